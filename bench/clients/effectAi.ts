/**
 * Effect's own AI packages: `LanguageModel.generateText` / `streamText` from
 * `@effect/ai`, over `@effect/ai-anthropic` (Messages) or `@effect/ai-openai`
 * (which speaks only the Responses API), on `NodeHttpClient.layerUndici`,
 * built once into a runtime.
 */
import * as AnthropicClient from "@effect/ai-anthropic/AnthropicClient"
import * as AnthropicLanguageModel from "@effect/ai-anthropic/AnthropicLanguageModel"
import * as OpenAiClient from "@effect/ai-openai/OpenAiClient"
import * as OpenAiLanguageModel from "@effect/ai-openai/OpenAiLanguageModel"
import * as LanguageModel from "@effect/ai/LanguageModel"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { baseOf, type ClientFactory } from "../client.js"
import { model, prompt } from "../payloads.js"

const make: ClientFactory = (target) => {
  const apiKey = Redacted.make("bench")
  const languageModel = target.protocol === "messages"
    ? AnthropicLanguageModel.layer({ model, config: { max_tokens: 1024 } }).pipe(
      Layer.provide(AnthropicClient.layer({ apiKey, apiUrl: baseOf(target) }))
    )
    : OpenAiLanguageModel.layer({ model }).pipe(
      Layer.provide(OpenAiClient.layer({ apiKey, apiUrl: `${baseOf(target)}/v1` }))
    )
  const runtime = ManagedRuntime.make(languageModel.pipe(Layer.provide(NodeHttpClient.layerUndici)))
  const input = [
    { role: "system", content: prompt.system },
    { role: "user", content: prompt.user }
  ] as const
  return {
    complete: () =>
      runtime.runPromise(Effect.map(LanguageModel.generateText({ prompt: input }), (response) => response.text)),
    stream: (onText) =>
      runtime.runPromise(
        Stream.runForEach(
          LanguageModel.streamText({ prompt: input }),
          (part) => part.type === "text-delta" ? Effect.sync(() => onText(part.delta)) : Effect.void
        )
      ),
    close: () => runtime.dispose()
  }
}

export default make
