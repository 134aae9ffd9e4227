/**
 * The Effect metrics of spoken turns (`Conversation.speak`): three latency histograms in milliseconds, the turns counted by whether they were interrupted, and their output tokens.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import type { ResponseMetadata } from "../Reply.js"

/** A spoken turn's figures, as `ResponseMetadata.voice` holds them. */
type TurnMetrics = NonNullable<ResponseMetadata["voice"]>

/**
 * Bucket boundaries of the latency histograms, in milliseconds: fine where a
 * listener notices the wait (a reply should start within a few hundred
 * milliseconds, a pause of a second feels long), coarse beyond.
 */
export const latencyBoundaries = MetricBoundaries.fromIterable([
  50,
  100,
  150,
  200,
  300,
  400,
  500,
  750,
  1000,
  1500,
  2000,
  3000,
  5000,
  10000
])

/** A latency histogram; its `unit` tag is what Effect's OpenTelemetry bridge reports as the unit. */
const latency = (name: string, description: string): Metric.Metric.Histogram<number> =>
  Metric.histogram(name, latencyBoundaries, description).pipe(Metric.tagged("unit", "ms"))

/** From a spoken turn's start to its first text. */
export const timeToFirstToken: Metric.Metric.Histogram<number> = latency(
  "effect_llm.voice.time_to_first_token",
  "Milliseconds from a spoken turn's start to the first text of its reply"
)

/** From a spoken turn's start to its first chunk handed to the speech sink. */
export const timeToFirstChunk: Metric.Metric.Histogram<number> = latency(
  "effect_llm.voice.time_to_first_chunk",
  "Milliseconds from a spoken turn's start to its first speakable chunk handed to the speech sink"
)

/** From a spoken turn's start to its first audio (the sink's `started`). */
export const timeToFirstAudio: Metric.Metric.Histogram<number> = latency(
  "effect_llm.voice.time_to_first_audio",
  "Milliseconds from a spoken turn's start to the start of its first audio, as the speech sink reports it"
)

/** Spoken turns, tagged `interrupted` `"true"` or `"false"`. */
export const turns: Metric.Metric.Counter<number> = Metric.counter("effect_llm.voice.turns", {
  description: "Spoken turns, by whether they were interrupted (barge-in)",
  incremental: true
}).pipe(Metric.tagged("unit", "{turn}"))

/** Output tokens of spoken turns (the usage their steps reported). */
export const outputTokens: Metric.Metric.Counter<number> = Metric.counter("effect_llm.voice.output_tokens", {
  description: "Output tokens of spoken turns, as their backends reported them",
  incremental: true
}).pipe(Metric.tagged("unit", "{token}"))

/** Records one spoken turn in the metrics above. */
export const record = (metrics: TurnMetrics): Effect.Effect<void> =>
  Effect.suspend(() => {
    const updates: Array<Effect.Effect<void>> = [
      Metric.increment(Metric.tagged(turns, "interrupted", String(metrics.interrupted))),
      Metric.incrementBy(outputTokens, metrics.outputTokens)
    ]
    if (metrics.firstTokenMillis !== undefined) updates.push(Metric.update(timeToFirstToken, metrics.firstTokenMillis))
    if (metrics.firstChunkMillis !== undefined) updates.push(Metric.update(timeToFirstChunk, metrics.firstChunkMillis))
    if (metrics.firstAudioMillis !== undefined) updates.push(Metric.update(timeToFirstAudio, metrics.firstAudioMillis))
    return Effect.all(updates, { discard: true })
  })
