/**
 * Settles with `work`, unless `deadline` aborts first: then with `onDeadline`'s outcome, even if
 * `work` never settles (a task that ignores its signal). The work's own late outcome is dropped.
 */
export function settleBefore<T>(work: Promise<T>, deadline: AbortSignal, onDeadline: () => Promise<never>): Promise<T> {
  work.catch(() => {}); // a late outcome after the deadline is already decided
  return new Promise<T>((resolve, reject) => {
    const expire = () => void onDeadline().catch(reject);
    if (deadline.aborted) return expire();
    deadline.addEventListener("abort", expire, { once: true });
    work.then(
      (value) => {
        deadline.removeEventListener("abort", expire);
        resolve(value);
      },
      (error: unknown) => {
        deadline.removeEventListener("abort", expire);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
