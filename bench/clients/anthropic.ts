/** The official `@anthropic-ai/sdk` (Messages), with its default retries and timeout. */
import Anthropic from "@anthropic-ai/sdk"
import { baseOf, type ClientFactory } from "../client.js"
import { model, prompt } from "../payloads.js"

const make: ClientFactory = (target) => {
  const client = new Anthropic({ baseURL: baseOf(target), apiKey: "bench" })
  const request = {
    model,
    max_tokens: 1024,
    system: prompt.system,
    messages: [{ role: "user" as const, content: prompt.user }]
  }
  return {
    complete: async () => {
      const message = await client.messages.create(request)
      let text = ""
      for (const block of message.content) if (block.type === "text") text += block.text
      return text
    },
    stream: async (onText) => {
      const stream = await client.messages.create({ ...request, stream: true })
      for await (const event of stream) {
        if (event.type === "content_block_delta" && event.delta.type === "text_delta") onText(event.delta.text)
      }
    },
    close: async () => {}
  }
}

export default make
