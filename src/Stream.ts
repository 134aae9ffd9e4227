/**
 * Streamed replies: the `StreamEvent` union every backend emits, and the
 * functions that turn a stream of events into text, sentences or a
 * `CompletionResult`.
 *
 * @since 0.1.0
 */
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { LlmResponseError } from "./errors.js"
import { ReplyCollector } from "./internal/replyCollector.js"
import { textOnly, textsOf } from "./internal/textOnly.js"
import type { CompletionResult, StreamEvent } from "./Reply.js"

export {
  /** @since 0.1.0 */
  StreamEvent
} from "./Reply.js"

/**
 * Keeps only the text of the reply. A backend's own stream hands its text
 * over as it decodes it (no extra stage); any other stream goes through one.
 *
 * @since 0.1.0
 */
export const textDeltas = <E, R>(self: Stream.Stream<StreamEvent, E, R>): Stream.Stream<string, E, R> =>
  textOnly(self) ?? Stream.mapChunks(self, (chunk) => Chunk.unsafeFromArray(textsOf(chunk)))

/**
 * Folds a stream into the `CompletionResult` that `complete` returns for the
 * same reply. Fails with `LlmResponseError` if the stream has no `Finish`.
 *
 * @since 0.1.0
 */
export const collect = <E, R>(
  self: Stream.Stream<StreamEvent, E, R>
): Effect.Effect<CompletionResult, E | LlmResponseError, R> =>
  Effect.suspend(() => {
    const collector = new ReplyCollector()
    return Stream.runForEachChunk(self, (chunk) =>
      Effect.sync(() => {
        for (const event of chunk) collector.push(event)
      })).pipe(
        Effect.flatMap(() => {
          const result = collector.result()
          return result === undefined
            ? Effect.fail(
              new LlmResponseError({
                provider: "unknown",
                model: "unknown",
                message: "the stream ended without a Finish event"
              })
            )
            : Effect.succeed(result)
        })
      )
  })

const abbreviations = new Set(["mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "approx"])

/** Whether the character at `i` ends a sentence: `.` `!` `?` `…` followed by whitespace, or a newline. */
const endsSentence = (text: string, i: number): boolean => {
  const c = text.charCodeAt(i)
  if (c === 10) return true
  if (c !== 46 && c !== 33 && c !== 63 && c !== 8230) return false
  const next = text.charCodeAt(i + 1)
  if (next !== 32 && next !== 10 && next !== 9 && next !== 13) return false
  if (c !== 46) return true
  const word = text.slice(text.lastIndexOf(" ", i - 1) + 1, i).toLowerCase()
  return !abbreviations.has(word)
}

/**
 * Regroups the text of a reply into whole sentences, the unit a speech
 * synthesiser wants: each sentence is emitted as soon as its end is seen, the
 * rest when the stream ends. Surrounding whitespace is trimmed and empty
 * sentences are dropped. Linear in the length of the text; one stream stage
 * (text selection, splitting and the final rest in one channel).
 *
 * @since 0.1.0
 */
export const sentences = <E, R>(self: Stream.Stream<StreamEvent, E, R>): Stream.Stream<string, E, R> =>
  Stream.suspend(() => {
    let buffer = ""
    let scanned = 0
    const emit = (text: string, out: Array<string>) => {
      const sentence = text.trim()
      if (sentence.length > 0) out.push(sentence)
    }
    const split = (chunk: Chunk.Chunk<StreamEvent>): Array<string> => {
      const out: Array<string> = []
      for (const event of chunk) {
        if (event._tag !== "TextDelta") continue
        buffer += event.text
        let start = 0
        // the last character cannot be judged until the next one arrives
        for (let i = scanned; i < buffer.length - 1; i++) {
          if (endsSentence(buffer, i)) {
            emit(buffer.slice(start, i + 1), out)
            start = i + 1
          }
        }
        if (start > 0) buffer = buffer.slice(start)
        scanned = Math.max(0, buffer.length - 1)
      }
      return out
    }
    const loop: Channel.Channel<Chunk.Chunk<string>, Chunk.Chunk<StreamEvent>, E, E, unknown, unknown> = Channel
      .readWithCause({
        onInput: (chunk: Chunk.Chunk<StreamEvent>) => {
          const out = split(chunk)
          return out.length === 0 ? loop : Channel.zipRight(Channel.write(Chunk.unsafeFromArray(out)), loop)
        },
        onFailure: Channel.failCause,
        onDone: () => {
          const out: Array<string> = []
          emit(buffer, out)
          return out.length === 0 ? Channel.void : Channel.write(Chunk.unsafeFromArray(out))
        }
      })
    return Stream.pipeThroughChannel(self, loop)
  })
