/**
 * Spans only when something records them: under Effect's built-in tracer
 * nothing does (no exporter, no log), and a span costs more than a small
 * request's own work.
 *
 * @internal
 */
import * as Effect from "effect/Effect"

/** Effect's built-in tracer. Its spans are recorded nowhere: no exporter, no log, nothing a user can read. */
export const nativeTracer = Effect.runSync(Effect.tracer)

/**
 * Runs `effect` in the span `name` when the application installed a tracer;
 * under Effect's built-in tracer with tracing off, so that neither this span
 * nor the transport's `http.client` span is made.
 */
export const traced = <A, E, R>(
  name: string,
  attributes: Readonly<Record<string, unknown>>,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.tracerWith((tracer) =>
    tracer === nativeTracer
      ? Effect.withTracerEnabled(effect, false)
      : Effect.withSpan(effect, name, { attributes })
  )
