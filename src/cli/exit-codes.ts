/**
 * What the `pgjobs` command's exit code means, for scripts and supervisors. Every command uses
 * these; the README lists them.
 */
export const EXIT = {
  /** Done: the command did what it was asked (a worker: it stopped on request, cleanly). */
  OK: 0,
  /** Something failed: the job failed, the database is unreachable, the worker stopped on an error. */
  FAILURE: 1,
  /** The command line was wrong: unknown command or option, bad value. Nothing was done. */
  USAGE: 2,
  /** A worker stopped by force (a second signal, or a drain that outlived its timeout): its running jobs were failed, to be retried. */
  FORCED: 3,
} as const;
