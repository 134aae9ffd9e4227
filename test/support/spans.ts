/**
 * Recording the spans Effect starts, for tests that check what spans hold.
 */
import * as Effect from "effect/Effect"
import * as Tracer from "effect/Tracer"

/** A tracer recording every span Effect starts (the library's own and @effect/platform's HTTP client spans). */
export const recordSpans = Effect.map(Effect.tracer, (native) => {
  const spans: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind, options) => {
      const span = native.span(name, parent, context, links, startTime, kind, options)
      spans.push(span)
      return span
    },
    context: (f, fiber) => native.context(f, fiber)
  })
  return { spans, tracer }
})
