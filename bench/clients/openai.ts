/** The official `openai` SDK (Chat Completions), with its default retries and timeout. */
import OpenAI from "openai"
import { baseOf, type ClientFactory } from "../client.js"
import { model, prompt } from "../payloads.js"

const make: ClientFactory = (target) => {
  const client = new OpenAI({ baseURL: `${baseOf(target)}/v1`, apiKey: "bench" })
  const messages = [
    { role: "system", content: prompt.system },
    { role: "user", content: prompt.user }
  ] as const
  return {
    complete: async () => {
      const completion = await client.chat.completions.create({ model, messages: [...messages] })
      return completion.choices[0]?.message.content ?? ""
    },
    stream: async (onText) => {
      const stream = await client.chat.completions.create({ model, messages: [...messages], stream: true })
      for await (const chunk of stream) {
        const text = chunk.choices[0]?.delta.content
        if (text) onText(text)
      }
    },
    close: async () => {}
  }
}

export default make
