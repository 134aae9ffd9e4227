/**
 * The real OpenTelemetry SDK, installed through `@effect/opentelemetry`'s
 * `NodeSdk` layer, with an in-memory span exporter and a metric reader whose
 * collections the tests read. The exporter is emptied when the layer shuts
 * the provider down: read the spans inside the program the layer is provided to.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import type * as Resource from "@effect/opentelemetry/Resource"
import type { HrTime } from "@opentelemetry/api"
import {
  AggregationTemporality,
  type DataPoint,
  type Histogram,
  InMemoryMetricExporter,
  PeriodicExportingMetricReader
} from "@opentelemetry/sdk-metrics"
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"

/** One SDK: its layer, the spans it exported, and its metrics as collected now. */
export interface Sdk {
  readonly layer: Layer.Layer<Resource.Resource>
  /** Every finished span exported so far, in the order they ended. */
  readonly spans: () => ReadonlyArray<ReadableSpan>
  /** The data points of the metric `name`, as the reader collects them now. */
  readonly points: (name: string) => Effect.Effect<ReadonlyArray<DataPoint<unknown>>>
}

/** A fresh SDK with in-memory exporters. */
export const makeSdk = (): Sdk => {
  const spans = new InMemorySpanExporter()
  const reader = new PeriodicExportingMetricReader({
    exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
    exportIntervalMillis: 3_600_000
  })
  return {
    layer: NodeSdk.layer(() => ({
      resource: { serviceName: "effect-llm-tests" },
      spanProcessor: new SimpleSpanProcessor(spans),
      metricReader: reader
    })),
    spans: () => spans.getFinishedSpans(),
    points: (name) =>
      Effect.map(Effect.promise(() => reader.collect()), ({ resourceMetrics }) =>
        resourceMetrics.scopeMetrics
          .flatMap((scope) => scope.metrics)
          .filter((metric) => metric.descriptor.name === name)
          .flatMap((metric) => metric.dataPoints as ReadonlyArray<DataPoint<unknown>>))
  }
}

/** Runs `f` with a fresh SDK installed (its tracer the current one, its metric reader registered). */
export const withSdk = <A, E, R>(
  f: (sdk: Sdk) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, Exclude<R, Resource.Resource>> =>
  Effect.suspend(() => {
    const sdk = makeSdk()
    return Effect.provide(f(sdk), sdk.layer)
  })

/** The data points whose attributes include `attributes`. */
export const matching = <T>(
  points: ReadonlyArray<DataPoint<T>>,
  attributes: Readonly<Record<string, unknown>>
): ReadonlyArray<DataPoint<T>> =>
  points.filter((point) => Object.entries(attributes).every(([key, value]) => point.attributes[key] === value))

/** A histogram point's value. */
export const histogramOf = (point: DataPoint<unknown> | undefined): Histogram => {
  if (point === undefined) throw new Error("no such data point")
  return point.value as Histogram
}

/** An `HrTime` in milliseconds. */
export const millisOf = (time: HrTime): number => time[0] * 1000 + time[1] / 1e6

/** The children of `parent` among `spans`. */
export const childrenOf = (spans: ReadonlyArray<ReadableSpan>, parent: ReadableSpan): ReadonlyArray<ReadableSpan> =>
  spans.filter((span) => span.parentSpanContext?.spanId === parent.spanContext().spanId)
