/**
 * A reference, not a peer: the raw client (same request, same hand-written
 * SSE splitter) handing its text deltas back as an Effect `Stream`, in the
 * least way there is: one `Effect.promise` per network read, each read's
 * deltas written as one chunk, consumed with `Stream.runForEach` as every
 * Effect client here is. It has no retry, timeouts, validation or error
 * mapping. What it costs above raw is what running an Effect stream costs:
 * the floor under any library whose API returns one, effect-llm included.
 */
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { request } from "undici"
import type { ClientFactory } from "../client.js"
import { DeltaSplitter, requestsOf, textOf } from "./raw.js"

const make: ClientFactory = (target) => {
  const { completeBody, headers, streamBody, url } = requestsOf(target)
  const send = (body: string) =>
    Effect.promise(async () => {
      const response = await request(url, { method: "POST", headers, body })
      if (response.statusCode !== 200) throw new Error(`status ${response.statusCode}`)
      return response
    })
  const texts = Stream.fromChannel(Channel.unwrap(Effect.map(send(streamBody), (response) => {
    const reads = response.body[Symbol.asyncIterator]()
    const splitter = new DeltaSplitter(target.protocol)
    const read: Channel.Channel<Chunk.Chunk<string>> = Channel.unwrap(
      Effect.map(Effect.promise(() => reads.next()), (next) => {
        if (next.done === true) return Channel.void
        const out: Array<string> = []
        splitter.feed(next.value as Uint8Array, (text) => out.push(text))
        return out.length === 0 ? read : Channel.zipRight(Channel.write(Chunk.unsafeFromArray(out)), read)
      })
    )
    return read
  })))
  return {
    complete: () =>
      Effect.runPromise(
        Effect.flatMap(send(completeBody), (response) => Effect.promise(() => response.body.text()))
      ).then((body) => textOf(target.protocol, body)),
    stream: (onText) => Effect.runPromise(Stream.runForEach(texts, (text) => Effect.sync(() => onText(text)))),
    close: async () => {}
  }
}

export default make
