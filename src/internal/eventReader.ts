import { createParser, type EventSourceParser } from "eventsource-parser"
import type { LlmError } from "../errors.js"
import { type ErrorContext, responseError } from "./errorFactory.js"
import type { StreamEvent } from "../Stream.js"
import type { DecodedFinish, StreamDecoder } from "../layers/WireCodec.js"

/** `TextDecoder.decode` options for a read that may end inside a character. */
const streaming: TextDecodeOptions = { stream: true }

/** The longest SSE line or event we buffer before failing the stream (bytes of text). */
export const defaultMaxEventSize = 16 * 1024 * 1024

/**
 * Turns response bytes into `StreamEvent`s in one synchronous pass per network
 * read: UTF-8 decoding that keeps multi-byte characters split across reads,
 * SSE framing (eventsource-parser, linear), then the codec's decoder.
 * Comments and keep-alives produce no events.
 *
 * @internal
 */
export class EventReader {
  private readonly text = new TextDecoder("utf-8", { fatal: true })
  private readonly parser: EventSourceParser
  private out: Array<StreamEvent> = []
  private failure: LlmError | undefined

  constructor(
    private readonly decoder: StreamDecoder,
    private readonly context: ErrorContext,
    maxEventSize: number = defaultMaxEventSize
  ) {
    this.parser = createParser({
      onEvent: (event) => {
        if (this.failure === undefined && !this.decoder.done) {
          try {
            this.failure = this.decoder.push(event.event, event.data, this.out)
          } catch (cause) {
            // a hostile event can still overflow something (JSON nested thousands deep): a typed error, never a defect
            this.failure = responseError(this.context, `an event could not be decoded: ${cause instanceof Error ? cause.message : String(cause)}`)
          }
        }
      },
      onError: (error) => {
        if (error.type === "max-buffer-size-exceeded" && this.failure === undefined) {
          this.failure = responseError(this.context, `an SSE event exceeded ${maxEventSize} bytes`)
        }
      },
      maxBufferSize: maxEventSize
    })
  }

  /** Whether the protocol's terminator was seen: the reply is complete. */
  get done(): boolean {
    return this.decoder.done
  }

  /** Feeds one network read; returns the events it completed, or the failure it revealed. */
  feed(bytes: Uint8Array): Array<StreamEvent> | LlmError {
    let text: string
    try {
      text = this.text.decode(bytes, streaming)
    } catch {
      return responseError(this.context, "the stream is not valid UTF-8")
    }
    this.parser.feed(text)
    return this.take()
  }

  /**
   * The body ended (or the terminator was seen): flushes what is buffered and
   * asks the codec how the reply finished.
   */
  end(): { readonly events: Array<StreamEvent>; readonly finish: DecodedFinish } | LlmError {
    if (!this.decoder.done) {
      let rest: string
      try {
        rest = this.text.decode()
      } catch {
        return responseError(this.context, "the stream ends inside a UTF-8 character")
      }
      if (rest.length > 0) this.parser.feed(rest)
      // a last event without its blank line still counts: servers do cut it
      this.parser.feed("\n\n")
    }
    const events = this.take()
    if (!Array.isArray(events)) return events
    const finish = this.decoder.finish(events)
    return "_tag" in finish ? finish : { events, finish }
  }

  private take(): Array<StreamEvent> | LlmError {
    if (this.failure !== undefined) return this.failure
    const out = this.out
    this.out = []
    return out
  }
}
