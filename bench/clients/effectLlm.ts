/**
 * effect-llm through its public API, as an application uses it: a layer
 * (`Local` for Chat Completions, `Anthropic` for Messages) on its default
 * transport (undici, directly), built once into a runtime, with the default
 * retry policy and timeouts; `Llm.complete` and `Llm.streamText` per call.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { Anthropic, Llm, Local, Message } from "../../src/index.js"
import { baseOf, type BenchClient, type Target } from "../client.js"
import { model, prompt } from "../payloads.js"

/** The client over the given transport layer (none: the default transport). */
export const makeWith = <ROut>(target: Target, transport: Layer.Layer<ROut> | undefined): BenchClient => {
  const backend = target.protocol === "chat"
    ? Local.layer({ baseUrl: baseOf(target), model })
    : Anthropic.layer({ baseUrl: baseOf(target), model, apiKey: Redacted.make("bench") })
  const runtime = ManagedRuntime.make(transport === undefined ? backend : Layer.provide(backend, transport))
  const messages = [Message.system(prompt.system), Message.user(prompt.user)]
  return {
    complete: () => runtime.runPromise(Effect.map(Llm.complete(messages), (result) => result.content)),
    stream: (onText) =>
      runtime.runPromise(Stream.runForEach(Llm.streamText(messages), (text) => Effect.sync(() => onText(text)))),
    close: () => runtime.dispose()
  }
}

export default (target: Target): BenchClient => makeWith(target, undefined)
