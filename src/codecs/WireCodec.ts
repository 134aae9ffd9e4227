/**
 * The kit for writing a wire codec: the pure part of a provider that turns
 * messages into a request body and response bytes into events. Everything
 * around it (HTTP, retries, timeouts, error mapping, interruption) is shared
 * and lives in `HttpProvider`, which turns a codec into an `Llm`. Besides the
 * shapes a codec implements, the kit gives the two error builders the
 * built-in codecs use, so a custom codec classifies failures the same way and
 * never lets the API key into an error message.
 *
 * @since 0.1.0
 */
import type { LlmError } from "../errors.js"
import type { ErrorContext, ProviderFailure } from "../internal/errorFactory.js"

export {
  /**
   * Where an error happened (provider, model, request id) and the secrets to
   * redact from it; handed to a codec by `HttpProvider`.
   *
   * @since 0.1.0
   */
  type ErrorContext,
  /**
   * The `LlmError` for what a provider said about a failure (status, error
   * type or code, message): use it for an in-band stream error.
   *
   * @since 0.1.0
   */
  fromProviderFailure,
  /**
   * What a provider said about a failure: status, error type, code, message.
   *
   * @since 0.1.0
   */
  type ProviderFailure,
  /**
   * A `LlmResponseError` for a response the codec cannot use (its message is
   * prefixed with the provider and model, and the secrets are redacted).
   *
   * @since 0.1.0
   */
  responseError
} from "../internal/errorFactory.js"
import type { CompletionOptions } from "../Llm.js"
import type { Message, ReasoningPart, ToolCall } from "../Message.js"
import type { FinishReason, ResponseMetadata, StreamEvent, Usage } from "../Reply.js"

/**
 * What a server measured of one reply (prompt and generation times), as
 * `ResponseMetadata.timings` reports it.
 *
 * @since 0.1.0
 */
export type ServerTimings = NonNullable<ResponseMetadata["timings"]>

/**
 * What a codec encodes: the conversation plus options merged with the layer's defaults.
 *
 * @since 0.1.0
 */
export interface EncodeInput {
  readonly model: string
  readonly messages: ReadonlyArray<Message>
  readonly options: CompletionOptions
  readonly stream: boolean
}

/**
 * What a codec encodes to warm a prompt cache: the prefix to cache and the
 * options of the calls that will follow (a warm-up is never streamed).
 *
 * @since 0.1.0
 */
export type WarmInput = Omit<EncodeInput, "stream">

/**
 * A decoded non-streaming reply, before the shared layer adds its metadata.
 *
 * @since 0.1.0
 */
export interface DecodedReply {
  readonly content: string
  readonly reasoning?: string | undefined
  /** The reasoning as parts to send back (absent: one part of `reasoning`, if any, from this backend). */
  readonly reasoningParts?: ReadonlyArray<ReasoningPart> | undefined
  readonly toolCalls: ReadonlyArray<ToolCall>
  readonly finishReason: FinishReason
  readonly usage: Usage
  readonly model: string
  readonly responseId?: string | undefined
  /** What the server measured, when it reports it. */
  readonly timings?: ServerTimings | undefined
}

/**
 * How a stream ended normally: what the `Finish` event will carry.
 *
 * @since 0.1.0
 */
export interface DecodedFinish {
  readonly finishReason: FinishReason
  readonly usage: Usage
  readonly model: string
  readonly responseId?: string | undefined
  /** What the server measured, when it reports it. */
  readonly timings?: ServerTimings | undefined
}

/**
 * A stateful decoder for one streamed reply. It is fed whole SSE events, in
 * order, and pushes the public events they produce into `out`.
 *
 * @since 0.1.0
 */
export interface StreamDecoder {
  /**
   * Feeds one SSE event (`event` is the SSE event name, if any). Returns a
   * failure for an in-band error or an event that cannot be decoded.
   */
  readonly push: (event: string | undefined, data: string, out: Array<StreamEvent>) => LlmError | undefined
  /** True once the protocol's terminator was seen; later bytes are ignored. */
  readonly done: boolean
  /**
   * Called when the terminator was seen or the body ended. Pushes the events
   * still pending (complete tool calls) and returns how the reply finished, or
   * a failure when the stream was cut off.
   */
  readonly finish: (out: Array<StreamEvent>) => DecodedFinish | LlmError
  /**
   * The usage the reply reported so far (Chat Completions' usage chunk,
   * Anthropic's `message_start` and `message_delta` counters), undefined
   * before any: what a stream that fails now was billed for.
   */
  readonly usage?: (() => Usage | undefined) | undefined
}

/**
 * The provider-specific half of a backend.
 *
 * @since 0.1.0
 */
export interface WireCodec {
  /** Path appended to the layer's base URL (`/chat/completions`, `/v1/messages`). */
  readonly path: string
  /** Checks the request and builds the JSON body, or explains why it cannot be sent. */
  readonly encode: (input: EncodeInput) => { readonly body: unknown } | { readonly invalid: string }
  /**
   * Builds the body of a warm-up request: the prefix the backend should
   * cache, with as little generated as it allows. Absent when the backend
   * has no prompt cache to warm.
   */
  readonly warm?: ((input: WarmInput) => { readonly body: unknown } | { readonly invalid: string }) | undefined
  /**
   * Decodes a non-streaming response body; `options` are the call's (merged
   * with the layer's), for a codec whose reading depends on what was asked
   * (Anthropic's output tool under a response format).
   */
  readonly decodeResponse: (
    body: unknown,
    context: ErrorContext,
    options?: CompletionOptions
  ) => DecodedReply | LlmError
  /** Starts decoding one streamed reply (`options` as for `decodeResponse`). */
  readonly streamDecoder: (context: ErrorContext, options?: CompletionOptions) => StreamDecoder
  /** Reads the provider's error body (already parsed JSON, or the raw text). */
  readonly readError: (
    body: unknown
  ) => Pick<ProviderFailure, "type" | "code" | "message" | "promptTokens" | "contextTokens">
  /**
   * Body fields that carry the call itself beyond `model`, `messages` and
   * `stream` (Anthropic's `system`), each with what it holds: `providerOptions`
   * may not set them.
   */
  readonly reservedFields?: Readonly<Record<string, string>> | undefined
}
