/**
 * The library's metrics, as Effect `Metric`s (exported to OpenTelemetry by
 * `@effect/opentelemetry`'s metrics layer, like any Effect metric): the GenAI
 * conventions' client histograms, with their bucket boundaries, and
 * effect-llm's counters and breaker gauge. Updates go through the metric's
 * hook with label arrays kept by the caller, so that an update is a map
 * lookup by identity rather than a new key hashed in the registry.
 *
 * @internal
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"
import { durationBoundaries, metric, tokenBoundaries } from "./semconv.js"

/** `gen_ai.client.operation.duration`: seconds, per call. */
export const operationDuration = Metric.histogram(
  metric.operationDuration,
  MetricBoundaries.fromIterable(durationBoundaries),
  "GenAI operation duration (s)."
)

/** `gen_ai.client.token.usage`: tokens per call, by `gen_ai.token.type` (input, output). */
export const tokenUsage = Metric.histogram(
  metric.tokenUsage,
  MetricBoundaries.fromIterable(tokenBoundaries),
  "Number of input and output tokens used ({token})."
)

/** `gen_ai.client.operation.time_to_first_chunk`: seconds from the request to the first chunk of a stream. */
export const timeToFirstChunk = Metric.histogram(
  metric.timeToFirstChunk,
  MetricBoundaries.fromIterable(durationBoundaries),
  "Time to receive the first chunk of a streamed response (s)."
)

/** Calls by provider and outcome (`success`, `error` with `error.type`, `interrupted`). */
export const calls = Metric.counter(metric.calls, {
  description: "Model calls, by provider and outcome.",
  incremental: true
})

/** Retries of a call, by provider and the `error.type` that caused them. */
export const retries = Metric.counter(metric.retries, {
  description: "Retried attempts, by provider and error.type.",
  incremental: true
})

/** Fallback steps, from one backend to the next, with the reason. */
export const fallbacks = Metric.counter(metric.fallbacks, {
  description: "Fallback steps from one backend to the next, by from, to and reason.",
  incremental: true
})

/** Each backend's breaker: 0 closed, 1 half-open (its trial call in flight), 2 open. */
export const breakerState = Metric.gauge(metric.breakerState, {
  description: "Circuit breaker state by backend: 0 closed, 1 half-open, 2 open."
})

/** A label array from a record; the same record shape gives the same order. */
export const labels = (
  record: Readonly<Record<string, string | number | undefined>>
): Array<MetricLabel.MetricLabel> => {
  const out: Array<MetricLabel.MetricLabel> = []
  for (const key in record) {
    const value = record[key]
    if (value !== undefined) out.push(MetricLabel.make(key, String(value)))
  }
  return out
}

/** Adds one to `counter` under `tags`. */
export const increment = (counter: Metric.Metric.Counter<number>, tags: ReadonlyArray<MetricLabel.MetricLabel>): void =>
  counter.unsafeUpdate(1, tags)
