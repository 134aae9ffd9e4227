/**
 * The Vercel AI SDK: `generateText` and `streamText` (its `textStream`) over
 * `@ai-sdk/openai` (Chat Completions) or `@ai-sdk/anthropic` (Messages),
 * with its default retries.
 */
import { createAnthropic } from "@ai-sdk/anthropic"
import { createOpenAI } from "@ai-sdk/openai"
import { generateText, streamText } from "ai"
import { baseOf, type ClientFactory } from "../client.js"
import { model as modelName, prompt } from "../payloads.js"

const make: ClientFactory = (target) => {
  // the SDK logs a warning per call for settings the fake model "does not support"
  ;(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false
  const model = target.protocol === "chat"
    ? createOpenAI({ baseURL: `${baseOf(target)}/v1`, apiKey: "bench" }).chat(modelName)
    : createAnthropic({ baseURL: `${baseOf(target)}/v1`, apiKey: "bench" })(modelName)
  return {
    complete: async () => (await generateText({ model, system: prompt.system, prompt: prompt.user })).text,
    stream: async (onText) => {
      let failure: unknown
      const result = streamText({
        model,
        system: prompt.system,
        prompt: prompt.user,
        onError: ({ error }) => {
          failure = error
        }
      })
      for await (const text of result.textStream) onText(text)
      if (failure !== undefined) throw failure
    },
    close: async () => {}
  }
}

export default make
