/**
 * A reference, not a peer: the plainest Effect client one could write on the
 * same stack as effect-llm (`HttpClient` on `NodeHttpClient.layerUndici`,
 * `Stream.decodeText` + `Stream.splitLines` + `JSON.parse`), with no retry,
 * no timeouts, no error mapping. It shows what the Effect HTTP stack itself
 * costs: the floor under any library built on it.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Stream from "effect/Stream"
import { baseOf, type ClientFactory } from "../client.js"
import { model, prompt } from "../payloads.js"

interface ChatCompletion {
  readonly choices: ReadonlyArray<{ readonly message: { readonly content: string } }>
}

interface ChatChunk {
  readonly choices: ReadonlyArray<{ readonly delta: { readonly content?: string } }>
}

const make: ClientFactory = async (target) => {
  if (target.protocol !== "chat") throw new Error("the plain Effect client speaks Chat Completions only")
  const runtime = ManagedRuntime.make(NodeHttpClient.layerUndici)
  const client = await runtime.runPromise(HttpClient.HttpClient)
  const request = (stream: boolean) =>
    HttpClientRequest.post(`${baseOf(target)}/v1/chat/completions`).pipe(
      HttpClientRequest.bodyUnsafeJson({
        model,
        messages: [{ role: "system", content: prompt.system }, { role: "user", content: prompt.user }],
        stream
      })
    )
  const completeRequest = request(false)
  const streamRequest = request(true)
  return {
    complete: () =>
      runtime.runPromise(
        client.execute(completeRequest).pipe(
          Effect.flatMap((response) => response.text),
          Effect.map((text) => (JSON.parse(text) as ChatCompletion).choices[0]!.message.content)
        )
      ),
    stream: (onText) =>
      runtime.runPromise(
        client.execute(streamRequest).pipe(
          Effect.map((response) => response.stream),
          Stream.unwrap,
          Stream.decodeText(),
          Stream.splitLines,
          Stream.runForEach((line) =>
            Effect.sync(() => {
              if (!line.startsWith("data: ") || line === "data: [DONE]") return
              const text = (JSON.parse(line.slice(6)) as ChatChunk).choices[0]?.delta.content
              if (text) onText(text)
            })
          )
        )
      ),
    close: () => runtime.dispose()
  }
}

export default make
