/**
 * The baseline: `undici.request` and a hand-written SSE line splitter, no
 * library. What any client of the same protocol costs at least.
 */
import { request } from "undici"
import { baseOf, type ClientFactory, type Target } from "../client.js"
import { model, prompt, type Protocol } from "../payloads.js"

const paths: Record<Protocol, string> = {
  chat: "/v1/chat/completions",
  messages: "/v1/messages",
  responses: "/v1/responses"
}

/** The request body of each protocol. */
const bodyOf = (protocol: Protocol, stream: boolean): string => {
  switch (protocol) {
    case "chat":
      return JSON.stringify({
        model,
        messages: [{ role: "system", content: prompt.system }, { role: "user", content: prompt.user }],
        stream
      })
    case "messages":
      return JSON.stringify({
        model,
        max_tokens: 1024,
        system: prompt.system,
        messages: [{ role: "user", content: prompt.user }],
        stream
      })
    case "responses":
      return JSON.stringify({ model, instructions: prompt.system, input: prompt.user, stream })
  }
}

/** The few fields of each protocol's replies and events that the raw client reads. */
interface ChatCompletion {
  readonly choices: ReadonlyArray<{ readonly message: { readonly content: string } }>
}
interface ChatChunk {
  readonly choices: ReadonlyArray<{ readonly delta?: { readonly content?: string | null } }>
}
interface AnthropicMessage {
  readonly content: ReadonlyArray<{ readonly text: string }>
}
interface AnthropicEvent {
  readonly type: string
  readonly delta?: { readonly type: string; readonly text?: string }
}
interface ResponsesReply {
  readonly output: ReadonlyArray<{ readonly content: ReadonlyArray<{ readonly text: string }> }>
}
interface ResponsesEvent {
  readonly type: string
  readonly delta?: string
}

/** The text of a complete reply. */
export const textOf = (protocol: Protocol, body: string): string => {
  switch (protocol) {
    case "chat":
      return (JSON.parse(body) as ChatCompletion).choices[0]!.message.content
    case "messages":
      return (JSON.parse(body) as AnthropicMessage).content[0]!.text
    case "responses":
      return (JSON.parse(body) as ResponsesReply).output[0]!.content[0]!.text
  }
}

/** The text delta carried by one SSE `data:` payload, if any. */
const deltaOf = (protocol: Protocol, data: string): string | undefined => {
  switch (protocol) {
    case "chat":
      return data === "[DONE]" ? undefined : (JSON.parse(data) as ChatChunk).choices[0]?.delta?.content || undefined
    case "messages": {
      const event = JSON.parse(data) as AnthropicEvent
      return event.type === "content_block_delta" && event.delta?.type === "text_delta" ? event.delta.text : undefined
    }
    case "responses": {
      const event = JSON.parse(data) as ResponsesEvent
      return event.type === "response.output_text.delta" ? event.delta : undefined
    }
  }
}

/** The URL, headers and bodies a raw client sends for `target`. */
export const requestsOf = (target: Target) => ({
  url: baseOf(target) + paths[target.protocol],
  headers: {
    "content-type": "application/json",
    authorization: "Bearer bench",
    "x-api-key": "bench",
    "anthropic-version": "2023-06-01"
  },
  completeBody: bodyOf(target.protocol, false),
  streamBody: bodyOf(target.protocol, true)
})

/**
 * The hand-written SSE splitter: UTF-8 decoding across reads, `data:` lines,
 * `JSON.parse`, the text delta of each event handed to `onText`.
 */
export class DeltaSplitter {
  private readonly decoder = new TextDecoder()
  private buffer = ""

  constructor(private readonly protocol: Protocol) {}

  /** Feeds one network read. */
  feed(bytes: Uint8Array, onText: (text: string) => void): void {
    this.buffer += this.decoder.decode(bytes, { stream: true })
    const buffer = this.buffer
    let start = 0
    let end: number
    while ((end = buffer.indexOf("\n", start)) >= 0) {
      if (buffer.startsWith("data: ", start)) {
        const text = deltaOf(this.protocol, buffer.slice(start + 6, end))
        if (text !== undefined) onText(text)
      }
      start = end + 1
    }
    this.buffer = buffer.slice(start)
  }
}

const make: ClientFactory = (target) => {
  const { completeBody, headers, streamBody, url } = requestsOf(target)
  return {
    complete: async () => {
      const response = await request(url, { method: "POST", headers, body: completeBody })
      if (response.statusCode !== 200) throw new Error(`status ${response.statusCode}`)
      return textOf(target.protocol, await response.body.text())
    },
    stream: async (onText) => {
      const response = await request(url, { method: "POST", headers, body: streamBody })
      if (response.statusCode !== 200) throw new Error(`status ${response.statusCode}`)
      const splitter = new DeltaSplitter(target.protocol)
      for await (const bytes of response.body) splitter.feed(bytes as Uint8Array, onText)
    },
    close: async () => {}
  }
}

export default make
