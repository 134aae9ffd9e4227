import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Llm from "../src/Llm.js"
import { ResponseMetadata, Usage } from "../src/Llm.js"
import * as Message from "../src/Message.js"
import { ToolCall } from "../src/Message.js"
import * as LlmStream from "../src/Stream.js"
import { StreamEvent } from "../src/Stream.js"

const finish = StreamEvent.Finish({
  finishReason: "tool_calls",
  usage: new Usage({ inputTokens: 1, outputTokens: 2, totalTokens: 3 }),
  model: "m",
  metadata: new ResponseMetadata({ provider: "p", attempts: 1, latencyMillis: 5 })
})

const text = (...pieces: ReadonlyArray<string>) =>
  Stream.fromIterable(pieces.map((text) => StreamEvent.TextDelta({ text })))

describe("LlmStream.collect", () => {
  it.effect("folds text, reasoning and tool calls into a CompletionResult", () =>
    Effect.gen(function*() {
      const call = new ToolCall({ id: "c", name: "f", arguments: { a: 1 } })
      const result = yield* LlmStream.collect(Stream.fromIterable<StreamEvent>([
        StreamEvent.ReasoningDelta({ text: "hm" }),
        StreamEvent.TextDelta({ text: "Hel" }),
        StreamEvent.TextDelta({ text: "lo" }),
        StreamEvent.ToolCallStart({ index: 0, id: "c", name: "f" }),
        StreamEvent.ToolCallDelta({ index: 0, argumentsDelta: "{\"a\":1}" }),
        StreamEvent.ToolCall({ index: 0, toolCall: call }),
        finish
      ]))
      expect(result.content).toBe("Hello")
      expect(result.reasoning).toBe("hm")
      expect(result.toolCalls).toEqual([call])
      expect(result.hasToolCalls).toBe(true)
      expect(result.tokensUsed).toBe(3)
      expect(result.finishReason).toBe("tool_calls")
      expect(result.metadata.provider).toBe("p")
    }))

  it.effect("fails when the stream has no Finish", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(LlmStream.collect(text("a")))
      expect(error._tag).toBe("LlmResponseError")
    }))
})

describe("LlmStream.sentences", () => {
  const sentencesOf = (...pieces: ReadonlyArray<string>) =>
    Effect.map(Stream.runCollect(LlmStream.sentences(text(...pieces))), Chunk.toReadonlyArray)

  it.effect("emits each sentence as soon as its end is seen", () =>
    Effect.gen(function*() {
      expect(yield* sentencesOf("Hello there. How", " are you? I'm", " fine!", " Bye")).toEqual([
        "Hello there.",
        "How are you?",
        "I'm fine!",
        "Bye"
      ])
    }))

  it.effect("keeps decimals, abbreviations and sentence ends split across deltas", () =>
    Effect.gen(function*() {
      expect(yield* sentencesOf("It costs 3", ".50 today, says Dr", ". Smith.", " Next", "\nline")).toEqual([
        "It costs 3.50 today, says Dr. Smith.",
        "Next",
        "line"
      ])
    }))

  it.effect("emits nothing for empty text", () =>
    Effect.gen(function*() {
      expect(yield* sentencesOf("", "  ")).toEqual([])
    }))

  it.effect("emits the first sentence before the stream ends", () =>
    Effect.gen(function*() {
      const first = yield* Stream.runHead(LlmStream.sentences(Stream.concat(text("One. Two"), Stream.never)))
      expect(first._tag === "Some" && first.value).toBe("One.")
    }))
})

describe("Llm.streamText", () => {
  it.effect("keeps only the text of a service without a streamText of its own", () =>
    Effect.gen(function*() {
      const events = [
        StreamEvent.ReasoningDelta({ text: "Think." }),
        StreamEvent.TextDelta({ text: "Hel" }),
        StreamEvent.ToolCallStart({ index: 0, id: "c1", name: "f" }),
        StreamEvent.TextDelta({ text: "lo" })
      ]
      const service: Llm.Llm.Service = {
        provider: "stub",
        model: "m",
        complete: () => Effect.die("not used"),
        stream: () => Stream.fromIterable(events)
      }
      const texts = yield* Stream.runCollect(Llm.streamText([Message.user("Hi")])).pipe(
        Effect.provideService(Llm.Llm, service)
      )
      expect(Chunk.toReadonlyArray(texts)).toEqual(["Hel", "lo"])
    }))
})
