/**
 * effect-llm through its public API, as an application uses it: a layer
 * (`Local` for Chat Completions, `Anthropic` for Messages) on
 * `NodeHttpClient.layerUndici`, built once into a runtime, with the default
 * retry policy and timeouts; `Llm.complete` and `Llm.streamText` per call.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { Anthropic, Llm, Local, Message } from "../../src/index.js"
import { baseOf, type ClientFactory } from "../client.js"
import { model, prompt } from "../payloads.js"

const make: ClientFactory = (target) => {
  const backend = target.protocol === "chat"
    ? Local.layer({ baseUrl: baseOf(target), model })
    : Anthropic.layer({ baseUrl: baseOf(target), model, apiKey: Redacted.make("bench") })
  const runtime = ManagedRuntime.make(backend.pipe(Layer.provide(NodeHttpClient.layerUndici)))
  const messages = [Message.system(prompt.system), Message.user(prompt.user)]
  return {
    complete: () => runtime.runPromise(Effect.map(Llm.complete(messages), (result) => result.content)),
    stream: (onText) =>
      runtime.runPromise(Stream.runForEach(Llm.streamText(messages), (text) => Effect.sync(() => onText(text)))),
    close: () => runtime.dispose()
  }
}

export default make
