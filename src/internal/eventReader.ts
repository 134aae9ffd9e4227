import { createParser, type EventSourceParser } from "eventsource-parser"
import type { DecodedFinish, DecodedReply, StreamDecoder } from "../codecs/WireCodec.js"
import type { LlmError } from "../errors.js"
import { StreamEvent } from "../Reply.js"
import type { Usage } from "../Usage.js"
import { readErrorBody } from "./errorBody.js"
import { type ErrorContext, fromProviderFailure, quote, quoteLimits, responseError } from "./errorFactory.js"
import { isObject } from "./json.js"

/** `TextDecoder.decode` options for a read that may end inside a character. */
const streaming: TextDecodeOptions = { stream: true }

/** The longest SSE line or event we buffer before failing the stream (bytes of text). */
export const defaultMaxEventSize = 16 * 1024 * 1024

/** Decodes a whole (non-streamed) response body, already parsed as JSON. */
export type WholeDecoder = (body: unknown, context: ErrorContext) => DecodedReply | LlmError

/**
 * Decodes a whole response body's text: JSON, then the codec's reply (or the
 * error the body stands for). `complete` and a stream answered with JSON
 * share it, so both read the same body the same way.
 *
 * @internal
 */
export const decodeWhole = (text: string, decode: WholeDecoder, context: ErrorContext): DecodedReply | LlmError => {
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    return responseError(context, `the response is not JSON: ${quote(context, text, quoteLimits.text)}`, 200)
  }
  return decode(body, context)
}

/**
 * The events a whole reply stands for, in the order a stream of it would
 * emit them: its reasoning (each part's text, then the part), its text, then
 * each tool call (start, arguments, the parsed call).
 *
 * @internal
 */
export const eventsOfReply = (reply: DecodedReply): Array<StreamEvent> => {
  const events: Array<StreamEvent> = []
  if (reply.reasoningParts === undefined) {
    if (reply.reasoning) events.push(StreamEvent.ReasoningDelta({ text: reply.reasoning }))
  } else {
    for (const part of reply.reasoningParts) {
      if (part.text !== "") events.push(StreamEvent.ReasoningDelta({ text: part.text }))
      events.push(StreamEvent.ReasoningPart({ part }))
    }
  }
  if (reply.content !== "") events.push(StreamEvent.TextDelta({ text: reply.content }))
  reply.toolCalls.forEach((toolCall, index) => {
    events.push(StreamEvent.ToolCallStart({ index, id: toolCall.id, name: toolCall.name }))
    events.push(StreamEvent.ToolCallDelta({ index, argumentsDelta: JSON.stringify(toolCall.arguments) }))
    events.push(StreamEvent.ToolCall({ index, toolCall }))
  })
  return events
}

/**
 * An SSE `error:` field: how llama-server (builds of 2025, before its
 * server was rewritten) reports a failure in a stream at HTTP 200, e.g. a
 * context overflow, with the error object (`{code, message, type, ...}`)
 * as its value, then `data: [DONE]`. It is that server's error; the numeric
 * `code` is the status it stands for.
 */
const errorField = (context: ErrorContext, value: string): LlmError => {
  let parsed: unknown = value
  try {
    parsed = JSON.parse(value)
  } catch {
    // plain text: the message itself
  }
  const error = isObject(parsed) && parsed.error !== undefined ? parsed.error : parsed
  const code = isObject(error) ? error.code : undefined
  return fromProviderFailure(context, {
    status: typeof code === "number" && code >= 400 && code < 600 ? code : undefined,
    ...readErrorBody({ error })
  })
}

/** How the body reads: not known yet (only whitespace so far), an event stream, or one JSON document. */
type Mode = "unknown" | "sse" | "json"

/** Whether a character is JSON/SSE leading whitespace (or a byte-order mark). */
const isBlank = (code: number): boolean => code === 32 || code === 10 || code === 13 || code === 9 || code === 0xfeff

/**
 * Turns response bytes into `StreamEvent`s in one synchronous pass per network
 * read: UTF-8 decoding that keeps multi-byte characters split across reads,
 * SSE framing (eventsource-parser, linear), then the codec's decoder.
 * Comments and keep-alives produce no events.
 *
 * A body whose first character (after whitespace) is `{` is no event stream
 * (no SSE line starts so): it is a server that ignored `stream: true` and sent
 * the whole reply, or an error, as JSON. Given a `whole` decoder, such a body
 * is read to its end and decoded as `complete` would decode it.
 *
 * @internal
 */
export class EventReader {
  private readonly text = new TextDecoder("utf-8", { fatal: true })
  private readonly parser: EventSourceParser
  private out: Array<StreamEvent> = []
  private failed: LlmError | undefined
  private mode: Mode = "unknown"
  private readonly json: Array<string> = []
  /** Event-stream text decoded but not parsed yet: the rest of a read fed with `first` (see `feed`). */
  private held = ""

  constructor(
    private readonly decoder: StreamDecoder,
    private readonly context: ErrorContext,
    maxEventSize: number = defaultMaxEventSize,
    private readonly whole?: WholeDecoder | undefined
  ) {
    this.parser = createParser({
      onEvent: (event) => {
        if (this.failed === undefined && !this.decoder.done) {
          try {
            this.failed = this.decoder.push(event.event, event.data, this.out)
          } catch (cause) {
            // a hostile event can still overflow something (JSON nested thousands deep): a typed error, never a defect
            const reason = quote(this.context, cause instanceof Error ? cause.message : String(cause), quoteLimits.text)
            this.failed = responseError(this.context, `an event could not be decoded: ${reason}`)
          }
        }
      },
      onError: (error) => {
        if (this.failed !== undefined) return
        if (error.type === "max-buffer-size-exceeded") {
          this.failed = responseError(this.context, `an SSE event exceeded ${maxEventSize} bytes`)
        } else if (error.type === "unknown-field" && error.field === "error" && !this.decoder.done) {
          this.failed = errorField(this.context, error.value ?? "")
        }
      },
      maxBufferSize: maxEventSize
    })
  }

  /** Whether the protocol's terminator was seen: the reply is complete. */
  get done(): boolean {
    return this.decoder.done
  }

  /** The usage the reply reported so far (see `StreamDecoder.usage`). */
  usage(): Usage | undefined {
    return this.decoder.usage?.()
  }

  /**
   * The failure the bytes fed so far revealed (an in-band error, an event
   * that cannot be decoded): the stream ends with it, after the events
   * decoded before it.
   */
  get failure(): LlmError | undefined {
    return this.failed
  }

  /**
   * Feeds one network read; returns the events it completed, those before a
   * failure included (see `failure`). Nothing is decoded after a failure.
   * With `first`, an event stream's text is parsed line by line only until
   * an event comes out: those events are returned at once and the rest of
   * the read is held, parsed by the next `feed` or `rest` (the whole read is
   * still decoded as UTF-8 first, so what fails and what does not is the
   * same either way).
   */
  feed(bytes: Uint8Array, first = false): Array<StreamEvent> {
    if (this.failed !== undefined) return []
    let text: string
    try {
      text = this.text.decode(bytes, streaming)
    } catch {
      // what was held came before these bytes: its events, and any failure in it, come first
      if (this.held !== "") this.parse(this.held, false)
      if (this.failed === undefined) this.failed = responseError(this.context, "the stream is not valid UTF-8")
      return this.take()
    }
    if (this.mode === "sse") this.parse(this.held === "" ? text : this.held + text, first)
    else if (this.mode === "json") this.json.push(text)
    else this.sniff(text, first)
    return this.take()
  }

  /** Whether part of a read is held, not parsed yet (see `feed`). */
  get holding(): boolean {
    return this.held !== ""
  }

  /** Parses the held rest of a read (with `first`, again only until an event comes out); returns its events. */
  rest(first = false): Array<StreamEvent> {
    if (this.failed === undefined && this.held !== "") this.parse(this.held, first)
    return this.take()
  }

  /** Feeds event-stream text to the parser: whole, or with `first` line by line until an event comes out. */
  private parse(text: string, first: boolean): void {
    this.held = ""
    if (!first) return this.parser.feed(text)
    let at = 0
    let end: number
    while (this.out.length === 0 && this.failed === undefined && (end = text.indexOf("\n", at)) >= 0) {
      this.parser.feed(text.slice(at, end + 1))
      at = end + 1
    }
    if (this.failed !== undefined || at === text.length) return
    if (this.out.length === 0) this.parser.feed(at === 0 ? text : text.slice(at))
    else this.held = text.slice(at)
  }

  /**
   * The body ended (or the terminator was seen): flushes what is buffered and
   * asks the codec how the reply finished. `finish` is the failure when the
   * reply is incomplete or invalid; `events` are those decoded before it.
   */
  end(): { readonly events: Array<StreamEvent>; readonly finish: DecodedFinish | LlmError } {
    if (this.failed !== undefined) return { events: [], finish: this.failed }
    if (!this.decoder.done) {
      if (this.held !== "") this.parse(this.held, false)
      let rest: string
      try {
        rest = this.text.decode()
      } catch {
        return { events: this.take(), finish: responseError(this.context, "the stream ends inside a UTF-8 character") }
      }
      if (this.mode === "json") return this.endJson(rest)
      if (rest.length > 0) this.parser.feed(rest)
      // a last event without its blank line still counts: servers do cut it
      this.parser.feed("\n\n")
    }
    const events = this.take()
    if (this.failed !== undefined) return { events, finish: this.failed }
    return { events, finish: this.decoder.finish(events) }
  }

  /** Before the first non-blank character: decides whether the body is an event stream or one JSON document. */
  private sniff(text: string, first: boolean): void {
    let at = 0
    while (at < text.length && isBlank(text.charCodeAt(at))) at++
    if (at === text.length) {
      // blank so far: blank lines dispatch nothing in SSE, and are nothing to a JSON document
      this.parser.feed(text)
      return
    }
    if (this.whole !== undefined && text.charCodeAt(at) === 123 /* { */) {
      this.mode = "json"
      this.json.push(text.slice(at))
      return
    }
    this.mode = "sse"
    this.parse(text, first)
  }

  /** The end of a JSON body: the reply it decodes to, as events, or the error it is. */
  private endJson(rest: string): { readonly events: Array<StreamEvent>; readonly finish: DecodedFinish | LlmError } {
    const reply = decodeWhole(this.json.join("") + rest, this.whole!, this.context)
    if ("_tag" in reply) return { events: [], finish: reply }
    const finish: DecodedFinish = {
      finishReason: reply.finishReason,
      usage: reply.usage,
      model: reply.model,
      responseId: reply.responseId
    }
    return { events: eventsOfReply(reply), finish }
  }

  private take(): Array<StreamEvent> {
    const out = this.out
    this.out = []
    return out
  }
}
