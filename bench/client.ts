/**
 * What every benchmarked client implements, and where it finds the server.
 * A client wraps one library behind two calls so the same scenarios drive
 * all of them; the calls do what an application would do with that library's
 * public API and nothing more.
 */
import type { Mode, Protocol } from "./payloads.js"

/** Where a client sends its requests. */
export interface Target {
  /** `http://127.0.0.1:<port>` of the fake server. */
  readonly origin: string
  /** The delivery mode, the first path segment of every URL. */
  readonly mode: Mode
  /** The wire protocol the client speaks. */
  readonly protocol: Protocol
  /** Which of its configurations a client module builds, for the modules that have several. */
  readonly variant?: string | undefined
}

/** One library, ready to make calls. */
export interface BenchClient {
  /** One non-streaming call; resolves with the reply's text. */
  readonly complete: () => Promise<string>
  /** One streamed call; `onText` gets every text delta in order; resolves when the stream ends. */
  readonly stream: (onText: (text: string) => void) => Promise<void>
  /** Releases what the client holds (runtimes, connection pools). */
  readonly close: () => Promise<void>
}

/** A client module's default export. */
export type ClientFactory = (target: Target) => BenchClient | Promise<BenchClient>

/** The prefix of every URL: origin plus delivery mode. */
export const baseOf = (target: Target): string => `${target.origin}/${target.mode}`
