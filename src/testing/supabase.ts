/**
 * A database laid out like Supabase's, on plain PostgreSQL, so grants, row-level security and
 * SECURITY DEFINER functions are tested against the roles that will really call them:
 *
 *   * the API roles `anon`, `authenticated` and `service_role` (BYPASSRLS), and `authenticator`,
 *     the login role PostgREST connects as, which may SET ROLE to each of them;
 *   * `auth.uid()`, `auth.role()` and `auth.jwt()`, reading `request.jwt.claims` as Supabase's do;
 *   * Supabase's default privileges on `public`: every table, function and sequence created there
 *     by the migrating role is granted to all three API roles.
 *
 * Roles belong to the server, not a database: they are created only if missing (several test
 * runs may share a server) and never dropped. Apply `SUPABASE_DATABASE_SQL` to a database before
 * migrating it, as Supabase's own setup runs before a project's migrations.
 *
 * @example
 * await ensureSupabaseRoles(adminUrl);
 * const template = await createTemplateDatabase(adminUrl, logger, { tasks, setupSql: SUPABASE_DATABASE_SQL });
 * // then, as PostgREST does: connect as authenticator, `set local role authenticated`,
 * // `select set_config('request.jwt.claims', '{"sub":"…","role":"authenticated"}', true)`.
 */
import pg from "pg";

/** The roles Supabase's API uses, as Supabase creates them. */
export const SUPABASE_ROLES_SQL: readonly string[] = [
  "create role anon nologin noinherit",
  "create role authenticated nologin noinherit",
  "create role service_role nologin noinherit bypassrls",
  "create role authenticator login noinherit",
];

/** What Supabase sets up in every project's database, before the project's own migrations. */
export const SUPABASE_DATABASE_SQL = `
  create schema if not exists auth;

  create or replace function auth.uid() returns uuid
  language sql stable
  as $$
    select coalesce(
      nullif(current_setting('request.jwt.claim.sub', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
  $$;

  create or replace function auth.role() returns text
  language sql stable
  as $$
    select coalesce(
      nullif(current_setting('request.jwt.claim.role', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    )::text
  $$;

  create or replace function auth.jwt() returns jsonb
  language sql stable
  as $$
    select coalesce(
      nullif(current_setting('request.jwt.claim', true), ''),
      nullif(current_setting('request.jwt.claims', true), '')
    )::jsonb
  $$;

  grant usage on schema auth to anon, authenticated, service_role;
  grant execute on function auth.uid(), auth.role(), auth.jwt() to anon, authenticated, service_role;

  grant usage on schema public to anon, authenticated, service_role;
  alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
  alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
  alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
`;

/**
 * Creates Supabase's API roles on the server if they are missing (and gives service_role the
 * BYPASSRLS it has on Supabase, should another run have made it without). Safe to run from
 * several processes at once: losing a race to create or grant is the same as finding it done.
 */
export async function ensureSupabaseRoles(adminUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl, application_name: "pgjobs supabase roles" });
  await client.connect();
  try {
    const statements = [
      ...SUPABASE_ROLES_SQL,
      "alter role service_role bypassrls",
      "grant anon, authenticated, service_role to authenticator",
    ];
    for (const statement of statements) {
      for (let attempt = 1; ; attempt++) {
        try {
          if (statement.startsWith("create role")) {
            const name = statement.split(" ")[2]!;
            const { rows } = await client.query("select 1 from pg_roles where rolname = $1", [name]);
            if (rows.length > 0) break;
          }
          if (statement.startsWith("alter role service_role")) {
            const { rows } = await client.query<{ bypass: boolean }>(
              "select rolbypassrls as bypass from pg_roles where rolname = 'service_role'",
            );
            if (rows[0]?.bypass) break;
          }
          await client.query(statement);
          break;
        } catch (error) {
          const code = (error as { code?: string }).code;
          // 42710 duplicate_object, 23505 unique_violation: another process made it first;
          // XX000 "tuple concurrently updated": another process changed the same role; retry.
          if (code === "42710" || code === "23505") break;
          if (code === "XX000" && attempt < 5) continue;
          throw error;
        }
      }
    }
  } finally {
    await client.end();
  }
}
