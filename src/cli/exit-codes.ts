/**
 * What the `pgjobs` command's exit code means, for scripts and supervisors. Every command uses
 * these; the README lists them. Each expected failure has its own code, so a script can tell
 * "the job failed" from "not finished yet" from "the database is down".
 */
export const EXIT = {
  /** Done: the command did what it was asked (a worker: it stopped on request, cleanly; health: this deployment can work). */
  OK: 0,
  /** Something failed: the job failed, the payload was refused, health found a problem, an unexpected error, the worker stopped on an error. */
  FAILURE: 1,
  /** The command line was wrong: unknown command or option, bad value. Nothing was done. */
  USAGE: 2,
  /** A worker stopped by force (a second signal, or a drain that outlived its timeout): its running jobs were failed, to be retried. */
  FORCED: 3,
  /** `result`: the job has not finished yet (waiting, scheduled, running, or to be retried); with --wait, not within --timeout. */
  NOT_FINISHED: 4,
  /** No such job: not in the queue, not in the history (a wrong id, or its history was pruned). */
  NOT_FOUND: 5,
  /** PostgreSQL could not be reached, or refused the login: nothing was read or changed. */
  DATABASE_UNREACHABLE: 6,
  /** The database is not migrated (or misses migrations): run `pgjobs migrate`. */
  NOT_MIGRATED: 7,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];
