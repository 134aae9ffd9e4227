/**
 * Streamed replies: the `StreamEvent` union every backend emits, and the
 * functions that turn a stream of events into text, speakable chunks or a
 * `CompletionResult`.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { LlmInvalidRequestError, LlmResponseError } from "./errors.js"
import { project, textsOf } from "./internal/projection.js"
import { ReplyCollector } from "./internal/replyCollector.js"
import { segmenterFor, SentenceChunker } from "./internal/speakable.js"
import { isNonNegativeInteger, isPositiveInteger } from "./internal/validate.js"
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
  project(self, textsOf)

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

/**
 * How `sentences` chunks a reply. Lengths count characters (UTF-16 code
 * units) of the chunk as it is sent: trimmed, and without markdown when
 * `speakable`.
 *
 * @since 0.1.0
 */
export interface SentenceOptions {
  /**
   * The BCP 47 language tag whose sentence rules `Intl.Segmenter` applies, and
   * whose abbreviations and ordinals ("am 3. Mai") do not end a sentence
   * (English abbreviations are always known). Default: the runtime's locale.
   */
  readonly locale?: string | undefined
  /** A chunk shorter than this is merged with the next sentence, unless the stream ends. Default 0. */
  readonly minLength?: number | undefined
  /**
   * A sentence longer than this is split before it at the best soft boundary:
   * clause punctuation (`,` `;` `:` `—`, CJK `、` `，`), else a space; code and
   * URLs are never split. Merging never makes a chunk longer. Default: no limit.
   */
  readonly maxLength?: number | undefined
  /**
   * The first chunk, so that speech starts sooner: it may end at a clause
   * boundary as soon as it is `minLength` long (and merges short sentences up
   * to that length instead of the general `minLength`). Later chunks end at
   * sentence ends.
   */
  readonly firstChunk?: { readonly minLength: number } | undefined
  /**
   * Drop the markdown a listener should not hear: emphasis, headings, block
   * quote marks, list bullets, thematic breaks, backticks, link and image
   * destinations (their text stays) and fenced code blocks whole (code is
   * not read aloud; inline code keeps its words). Default false.
   */
  readonly speakable?: boolean | undefined
}

/** What is wrong with `options`, if anything. */
const sentenceOptionsProblem = (options: SentenceOptions): string | undefined => {
  const { firstChunk, locale, maxLength, minLength } = options
  if (minLength !== undefined && !isNonNegativeInteger(minLength)) {
    return `minLength must be a non-negative integer, got ${String(minLength)}`
  }
  if (maxLength !== undefined && !isPositiveInteger(maxLength)) {
    return `maxLength must be a positive integer, got ${String(maxLength)}`
  }
  if (maxLength !== undefined && minLength !== undefined && maxLength < minLength) {
    return `maxLength (${maxLength}) must be at least minLength (${minLength})`
  }
  if (firstChunk !== undefined && !isNonNegativeInteger(firstChunk.minLength)) {
    return `firstChunk.minLength must be a non-negative integer, got ${String(firstChunk.minLength)}`
  }
  if (firstChunk !== undefined && maxLength !== undefined && maxLength < firstChunk.minLength) {
    return `maxLength (${maxLength}) must be at least firstChunk.minLength (${firstChunk.minLength})`
  }
  if (locale !== undefined) {
    try {
      segmenterFor(locale)
    } catch {
      return `locale ${JSON.stringify(locale)} is not a BCP 47 language tag (such as "en", "en-GB", "ja")`
    }
  }
  return undefined
}

/**
 * `sentences`' cutter for one stream: `split` takes each batch of events (text
 * selection and chunking), `end` the rest once the stream is over.
 */
const sentenceCutter = (options: SentenceOptions) => {
  const newChunker = () =>
    new SentenceChunker({
      locale: options.locale,
      minLength: options.minLength ?? 0,
      maxLength: options.maxLength ?? Infinity,
      firstMinLength: options.firstChunk?.minLength,
      speakable: options.speakable === true
    }, segmenterFor(options.locale))
  let chunker = newChunker()
  let hasText = false
  const split = (events: Iterable<StreamEvent>): Array<string> => {
    let out: Array<string> | undefined
    for (const event of events) {
      let chunks: Array<string>
      if (event._tag === "TextDelta") {
        hasText = true
        chunks = chunker.feed(event.text)
      } else if ((event._tag === "ToolCallStart" || event._tag === "ToolExecutionStart") && hasText) {
        // a tool call ends its step's text: what is pending is said now, while the tool runs
        chunks = chunker.end()
        chunker = newChunker()
        hasText = false
      } else continue
      if (chunks.length === 0) continue
      if (out === undefined) out = chunks
      else for (const c of chunks) out.push(c)
    }
    return out ?? []
  }
  return { split, end: () => chunker.end() }
}

/**
 * Regroups the text of a reply into speakable chunks, the unit a speech
 * synthesiser wants. Sentence boundaries come from `Intl.Segmenter` (the
 * `locale`'s rules, so Japanese and Chinese sentences end without spaces);
 * a sentence never ends inside a decimal, an abbreviation (e.g., Dr., p.m.),
 * a URL or e-mail address, after a list marker ("1. First") or inside code.
 * Short sentences can be merged (`minLength`), long ones split at a soft
 * boundary (`maxLength`), the first chunk cut early at a clause
 * (`firstChunk`), and markdown dropped (`speakable`).
 *
 * Each chunk is emitted as soon as the text after it proves its end (the
 * next sentence has started), the rest when the stream ends or a tool call
 * starts (`ToolCallStart`, or the tool loop's `ToolExecutionStart`: the text
 * of that step is over, "Let me check." is said while the tool runs, not
 * after it); chunks are
 * trimmed, never empty, and the same however the text was cut into deltas.
 * One stream stage at most (none on a backend's stream, whose reads are cut
 * where they are decoded); each delta costs time in proportion to its length.
 * Invalid options fail the stream with `LlmInvalidRequestError`.
 *
 * @example
 * ```ts
 * LlmStream.sentences(Llm.stream(messages), {
 *   speakable: true,
 *   minLength: 20,
 *   maxLength: 200,
 *   firstChunk: { minLength: 12 }
 * }).pipe(Stream.runForEach(speak))
 * ```
 *
 * @since 0.1.0
 */
export const sentences = <E, R>(
  self: Stream.Stream<StreamEvent, E, R>,
  options: SentenceOptions = {}
): Stream.Stream<string, E | LlmInvalidRequestError, R> =>
  Stream.suspend((): Stream.Stream<string, E | LlmInvalidRequestError, R> => {
    const problem = sentenceOptionsProblem(options)
    if (problem !== undefined) {
      return Stream.fail(
        new LlmInvalidRequestError({
          provider: "unknown",
          model: "unknown",
          message: `LlmStream.sentences: ${problem}`
        })
      )
    }
    // cut where the events are made (a stream without a projection: in one stage); a read that
    // completes no sentence wakes no stage after it
    const { end, split } = sentenceCutter(options)
    return Stream.concat(project(self, split), Stream.suspend(() => Stream.fromIterable(end())))
  })
