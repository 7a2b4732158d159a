/** The credits app's tasks see its own tables in ctx.db. */
import { defineTaskFor } from "../../index.ts";
import type { CreditsDatabase } from "../credits/credits.tables.ts";

export const defineAppTask = defineTaskFor<CreditsDatabase>();
