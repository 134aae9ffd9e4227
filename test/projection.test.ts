/**
 * internal/projection.ts on its own: the operators keep a stream's
 * projection (the work runs where its events are made, in no stage of its
 * own), a stream without one gets the work in one stage, and
 * `eachHandedOn` tells exactly what a consumer was handed, whatever the
 * batches held and whatever the consumer keeps of each event.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import { identity } from "effect/Function"
import * as Stream from "effect/Stream"
import * as Projection from "../src/internal/projection.js"
import { StreamEvent } from "../src/Reply.js"
import { Usage } from "../src/Usage.js"

const text = (t: string) => StreamEvent.TextDelta({ text: t })
const finish = StreamEvent.Finish({ finishReason: "stop", usage: Usage.zero, model: "m" } as never)
const batches: ReadonlyArray<ReadonlyArray<StreamEvent>> = [
  [text("a"), StreamEvent.ReasoningDelta({ text: "r" }), text("b")],
  [text("c")],
  [text("d"), finish]
]

/** A stream of `batches` that carries its projection, written as a backend's decoder writes it; notes each projection. */
const made = () => {
  const builtWith: Array<string> = []
  const events = Projection.projectable(<A>(projection: Projection.Projection<A>) => {
    builtWith.push(projection === identity ? "identity" : "projected")
    // each batch projected once the consumer has pulled past the one before
    const from = (at: number): Channel.Channel<Chunk.Chunk<A>, unknown, never, unknown, void, unknown> =>
      Channel.suspend(() => {
        if (at === batches.length) return Channel.void
        const writes = Projection.written(projection([...batches[at]!]))
        return writes === undefined ? from(at + 1) : Channel.flatMap(writes, () => from(at + 1))
      })
    return Stream.fromChannel(from(0))
  })
  return { builtWith, events }
}

/** `batches` as a stream that carries no projection, one chunk per batch. */
const plain = Stream.fromIterable(batches).pipe(Stream.mapConcatChunk((batch) => Chunk.unsafeFromArray([...batch])))

describe("projection", () => {
  it.effect("the operators keep the projection: the text is selected where the events are made", () =>
    Effect.gen(function*() {
      const source = made()
      const kept = Projection.concat(
        Projection.suspend(() => Projection.mapEvents(source.events, (events) => events)),
        Projection.unwrap(Effect.succeed(Projection.make(text("e"), finish)))
      )
      expect(Projection.isProjectable(kept)).toBe(true)
      const texts = yield* Stream.runCollect(Projection.project(kept, Projection.textsOf))
      expect(Chunk.toReadonlyArray(texts)).toEqual(["a", "b", "c", "d", "e"])
      // the source was built with the text selection, not piped through a stage of it
      expect(source.builtWith.at(-1)).toBe("projected")
      expect(Projection.isProjectable(Projection.make(finish))).toBe(true)
      expect(Chunk.toReadonlyArray(yield* Stream.runCollect(Projection.make(text("x"), finish)))).toEqual([
        text("x"),
        finish
      ])
    }))

  it.effect("mapEvents applies its function first, then the consumer's projection", () =>
    Effect.gen(function*() {
      const upper = (events: Array<StreamEvent>) =>
        events.map((event) => event._tag === "TextDelta" ? text(event.text.toUpperCase()) : event)
      for (const events of [made().events, plain]) {
        const texts = yield* Stream.runCollect(
          Projection.project(Projection.mapEvents(events, upper), Projection.textsOf)
        )
        expect(Chunk.toReadonlyArray(texts)).toEqual(["A", "B", "C", "D"])
      }
      expect(Projection.isProjectable(plain)).toBe(false)
    }))

  for (const [name, events] of [["carrying no projection", plain], ["projected", made().events]] as const) {
    for (const keep of [1, 2, 3, 4]) {
      it.effect(`eachHandedOn, ${name}: a consumer taking ${keep} texts was handed what seen was told of`, () =>
        Effect.gen(function*() {
          const seen: Array<string> = []
          const handed = Projection.eachHandedOn(events, (event) => {
            seen.push(event._tag === "TextDelta" ? event.text : event._tag)
          })
          const texts = yield* Stream.runCollect(Stream.take(Projection.project(handed, Projection.textsOf), keep))
          const got = Chunk.toReadonlyArray(texts)
          expect(got).toEqual(["a", "b", "c", "d"].slice(0, keep))
          // every event up to the last text taken, the ones that give no text included; none after it
          const upTo = ["a", "ReasoningDelta", "b", "c", "d"]
          expect(seen).toEqual(upTo.slice(0, upTo.indexOf(got.at(-1)!) + 1))
        }))
    }
    it.effect(`eachHandedOn, ${name}: a consumer that reads to the end was handed every event`, () =>
      Effect.gen(function*() {
        const seen: Array<string> = []
        const all = yield* Stream.runCollect(Projection.eachHandedOn(events, (event) => seen.push(event._tag)))
        expect(Chunk.toReadonlyArray(all).map((event) => event._tag)).toEqual(seen)
        expect(seen).toEqual(["TextDelta", "ReasoningDelta", "TextDelta", "TextDelta", "TextDelta", "Finish"])
      }))
  }
})
