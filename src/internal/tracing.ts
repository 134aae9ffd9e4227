/**
 * Spans only when something records them: under Effect's built-in tracer
 * nothing does (no exporter, no log), and a span costs more than a small
 * request's own work. The helpers here make a span, or read the one to add
 * an event to, only when the application installed a tracer.
 *
 * @internal
 */
import * as Channel from "effect/Channel"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Tracer from "effect/Tracer"

/** Effect's built-in tracer. Its spans are recorded nowhere: no exporter, no log, nothing a user can read. */
export const nativeTracer = Effect.runSync(Effect.tracer)

/** The span `fiber` runs in, when the application installed a tracer; undefined under the built-in one. */
export const recordingSpan = (fiber: Fiber.RuntimeFiber<unknown, unknown>): Tracer.Span | undefined => {
  if (fiber.currentTracer === nativeTracer) return undefined
  const span = fiber.currentSpan
  return span?._tag === "Span" ? span : undefined
}

/** The time on `fiber`'s clock in nanoseconds, as span events are stamped. */
export const nanosNow = (fiber: Fiber.RuntimeFiber<unknown, unknown>): bigint =>
  Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeNanos()

/** An OpenTelemetry span underneath an Effect span, as `@effect/opentelemetry`'s spans hold one. */
interface WithOtelSpan {
  readonly span?: { readonly setAttribute?: (key: string, value: Array<string>) => unknown } | undefined
}

/**
 * Sets a string-array attribute. `@effect/opentelemetry` (0.64) exports any
 * array given to an Effect span as its JSON text; on its spans the array is
 * also set on the OpenTelemetry span underneath, so that it is exported as
 * the string array the conventions define.
 */
export const setStrings = (span: Tracer.Span, key: string, values: ReadonlyArray<string>): void => {
  span.attribute(key, values)
  const otel = (span as WithOtelSpan).span
  if (typeof otel?.setAttribute === "function") otel.setAttribute(key, [...values])
}

/** Sets `attributes` on `span`, arrays of strings as string arrays (see `setStrings`). */
export const annotate = (span: Tracer.Span, attributes: Readonly<Record<string, unknown>>): void => {
  for (const key in attributes) {
    const value = attributes[key]
    if (Array.isArray(value)) setStrings(span, key, value as ReadonlyArray<string>)
    else span.attribute(key, value)
  }
}

/**
 * Runs `body` inside the span `name` (given to it, and the parent of the
 * spans it makes) when the application installed a tracer; else `body` with
 * no span (undefined), at the cost of one check.
 */
export const spanned = <A, E, R>(
  name: string,
  options: { readonly kind?: Tracer.SpanKind; readonly attributes?: Record<string, unknown> },
  body: (span: Tracer.Span | undefined) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime((fiber) =>
    fiber.currentTracer === nativeTracer
      ? body(undefined)
      : Effect.useSpan(name, { kind: options.kind ?? "internal", captureStackTrace: false }, (span) => {
        annotate(span, options.attributes ?? {})
        return Effect.withParentSpan(body(span), span)
      })
  )

/**
 * `channel` inside the span `name` (the parent of the spans it makes), which
 * ends when the channel does, when the application installed a tracer; else
 * `channel` as it is.
 */
export const spannedChannel = <OutElem, InElem, OutErr, InErr, OutDone, InDone, Env>(
  name: string,
  attributes: Readonly<Record<string, unknown>>,
  channel: Channel.Channel<OutElem, InElem, OutErr, InErr, OutDone, InDone, Env>
): Channel.Channel<OutElem, InElem, OutErr, InErr, OutDone, InDone, Env> =>
  Channel.unwrap(Effect.withFiberRuntime((fiber) => {
    if (fiber.currentTracer === nativeTracer) return Effect.succeed(channel)
    return Effect.map(Effect.makeSpan(name, { kind: "internal", captureStackTrace: false }), (span) => {
      annotate(span, attributes)
      return Channel.ensuringWith(
        Channel.provideService(channel, Tracer.ParentSpan, span),
        (exit) => Effect.sync(() => span.end(nanosNow(fiber), exit))
      )
    })
  }))
