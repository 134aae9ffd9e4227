/**
 * Running a benchmark's calls with a bound on how many are in flight, the
 * way the `complete-64` and concurrent-stream scenarios do.
 */

/** Runs `task` `count` times with at most `concurrency` in flight. */
export const pool = async (count: number, concurrency: number, task: () => Promise<unknown>): Promise<void> => {
  let started = 0
  const lane = async () => {
    while (started < count) {
      started++
      await task()
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane))
}
