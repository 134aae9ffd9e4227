/**
 * In-process measurements that need no server:
 * - `ConversationContext` pruning: one turn added to (and the oldest pruned
 *   from) a history of 100, 1,000 and 10,000 messages, then `.messages` read;
 *   the cost per message must stay flat (linear growth);
 * - sentence chunking: `LlmStream.sentences` per text delta, with its defaults
 *   and with the options a speech synthesiser uses, fed in batches (one network
 *   read of a fast stream) and one delta per chunk (a paced stream), next to its
 *   raw baseline (a naive regex splitter over the same deltas, no Effect), to
 *   the chunking alone in the same plain loop, to `LlmStream.textDeltas` alone,
 *   and on a reply ten times as long (the cost per delta must stay flat).
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { performance } from "node:perf_hooks"
import { ConversationContext, LlmStream, StreamEvent } from "../src/index.js"
import { segmenterFor, SentenceChunker } from "../src/internal/speakable.js"
import { expectedText, textChunks } from "./payloads.js"

/** Microseconds per call of `task`, over enough calls to last about `budgetMillis`, after a warm-up of a fifth of that. */
const timePerCall = (task: () => void, budgetMillis: number): number => {
  const warm = performance.now()
  for (let i = 0; i < 3 || performance.now() - warm < budgetMillis / 5; i++) task()
  const probeStart = performance.now()
  task()
  const probe = Math.max(performance.now() - probeStart, 0.001)
  const calls = Math.max(5, Math.ceil(budgetMillis / probe))
  const start = performance.now()
  for (let i = 0; i < calls; i++) task()
  return ((performance.now() - start) * 1000) / calls
}

/** A saved history of `size` messages: mostly user/assistant turns, every fifth turn with a tool round-trip. */
const encodedHistory = (size: number): Array<Record<string, unknown>> => {
  const history: Array<Record<string, unknown>> = []
  for (let turn = 0; history.length < size; turn++) {
    history.push({ role: "user", content: `Question number ${turn}: what about the weather today?` })
    if (turn % 5 === 4 && size - history.length >= 3) {
      const id = `call_${turn}`
      history.push({
        role: "assistant",
        content: "",
        toolCalls: [{ id, name: "weather", arguments: { city: "Paris" } }]
      })
      history.push({ role: "tool", toolCallId: id, name: "weather", content: "{\"celsius\":21}" })
    }
    if (history.length < size) history.push({ role: "assistant", content: `It is sunny, answer ${turn}.` })
  }
  return history
}

/** µs per `addUser` + `addAssistant` + `.messages` on a full history of `size` messages. */
const pruneCost = (size: number, budgetMillis: number): number => {
  const history = encodedHistory(size)
  const turns = history.filter((message) => message.role === "user").length
  const context = ConversationContext.decode({
    systemMessage: "You are a helpful assistant.",
    maxTurns: turns,
    maxTokens: 100_000_000,
    history
  })
  let kept = 0
  const cost = timePerCall(() => {
    kept = context.addUser("And tomorrow?").addAssistant({ content: "Rain." }).messages.length
  }, budgetMillis)
  if (kept < size - 4) throw new Error(`pruning kept ${kept} of ${size} messages`)
  return cost
}

const deltas = textChunks.map((text) => StreamEvent.TextDelta({ text }))

/** The same reply ten times over. */
const longDeltas = Array.from({ length: 10 }, () => deltas).flat()

/** The options a speech synthesiser would use. */
const speech: LlmStream.SentenceOptions = {
  locale: "en",
  speakable: true,
  minLength: 20,
  maxLength: 200,
  firstChunk: { minLength: 12 }
}

/**
 * The raw baseline: sentences split by a regular expression as the deltas arrive (a terminator
 * followed by white space), in a plain loop with no Effect. What a hand-written voice loop does.
 */
const naiveSentences = (texts: ReadonlyArray<string>): Array<string> => {
  const out: Array<string> = []
  let buffer = ""
  for (const text of texts) {
    buffer += text
    let end = /[.!?]\s/.exec(buffer)
    while (end !== null) {
      const sentence = buffer.slice(0, end.index + 1).trim()
      if (sentence.length > 0) out.push(sentence)
      buffer = buffer.slice(end.index + 2)
      end = /[.!?]\s/.exec(buffer)
    }
  }
  if (buffer.trim().length > 0) out.push(buffer.trim())
  return out
}

/** µs per text delta through `pipeline`, fed as one chunk per stream or one delta per chunk. */
const perDelta = (
  pipeline: (events: Stream.Stream<StreamEvent>) => Stream.Stream<string, unknown>,
  batched: boolean,
  budgetMillis: number,
  events: ReadonlyArray<StreamEvent> = deltas
): number => {
  const source = batched
    ? Stream.fromChunk(Chunk.unsafeFromArray(events))
    : Stream.fromChunks(...events.map((event) => Chunk.of(event)))
  const program = Stream.runCollect(pipeline(source))
  let out: Chunk.Chunk<string> = Chunk.empty()
  const cost = timePerCall(() => {
    out = Effect.runSync(program)
  }, budgetMillis)
  if (Chunk.isEmpty(out)) throw new Error("no output")
  return cost / events.length
}

/** Every micro measurement, by metric name. */
export const runMicro = async (quick: boolean): Promise<Record<string, number>> => {
  const budget = quick ? 150 : 600
  const metrics: Record<string, number> = {}
  for (const size of [100, 1_000, 10_000]) metrics[`prune${size}Micros`] = pruneCost(size, budget)
  // the sentences must cover the whole text
  const joined = Effect.runSync(Stream.runCollect(LlmStream.sentences(Stream.fromIterable(deltas)))).pipe(
    Chunk.join(" ")
  )
  if (joined.replace(/\s+/g, "") !== expectedText.replace(/\s+/g, "")) throw new Error("sentences lost text")
  if (naiveSentences(textChunks).join("").replace(/\s+/g, "") !== expectedText.replace(/\s+/g, "")) {
    throw new Error("the naive splitter lost text")
  }
  let naive = 0
  metrics.naiveSentencesMicros = timePerCall(() => {
    naive += naiveSentences(textChunks).length
  }, budget) / textChunks.length
  if (naive === 0) throw new Error("no output")
  // the chunking alone, in a plain loop like the baseline: what `sentences` adds to a stream stage
  let chunks = 0
  metrics.chunkerMicros = timePerCall(() => {
    const chunker = new SentenceChunker({
      locale: "en",
      minLength: 0,
      maxLength: Infinity,
      firstMinLength: undefined,
      speakable: false
    }, segmenterFor("en"))
    for (const text of textChunks) chunks += chunker.feed(text).length
    chunks += chunker.end().length
  }, budget) / textChunks.length
  if (chunks === 0) throw new Error("no output")
  const withSpeech = (events: Stream.Stream<StreamEvent>) => LlmStream.sentences(events, speech)
  metrics.sentencesBatchedMicros = perDelta(LlmStream.sentences, true, budget)
  metrics.sentencesPerChunkMicros = perDelta(LlmStream.sentences, false, budget)
  metrics.speechBatchedMicros = perDelta(withSpeech, true, budget)
  metrics.speechPerChunkMicros = perDelta(withSpeech, false, budget)
  metrics.speechLongBatchedMicros = perDelta(withSpeech, true, budget, longDeltas)
  metrics.textDeltasBatchedMicros = perDelta(LlmStream.textDeltas, true, budget)
  metrics.textDeltasPerChunkMicros = perDelta(LlmStream.textDeltas, false, budget)
  return metrics
}
