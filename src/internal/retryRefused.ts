/**
 * The switch `Fallback` uses to tell a backend's retry policy that a next
 * backend is waiting: while it is off, a refused connection is not retried,
 * so a dead local server costs no backoff.
 *
 * @internal
 */
import * as FiberRef from "effect/FiberRef"

/** Whether a refused connection is retried (default true; `Fallback` turns it off while a next backend waits). */
export const retryRefusedConnections: FiberRef.FiberRef<boolean> = FiberRef.unsafeMake(true)
