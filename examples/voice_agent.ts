/**
 * The voice assistant end to end, as one Effect program with services:
 * scripted speech-to-text (interim and final transcripts), a conversation
 * with a tool, speakable chunks into a speech synthesiser, filler while the
 * tool runs, a speculative start reused once and discarded once, and a
 * barge-in in the middle of the second answer. The synthesiser speaks
 * through espeak-ng into WAV files when it is installed, and prints
 * otherwise (`VOICE_SINK=print` prints in any case).
 * Run: npx tsx examples/voice_agent.ts
 */
import { Console, Context, Deferred, Effect, Fiber, Layer, Schema } from "effect"
import { execFile } from "node:child_process"
import { mkdtempSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Conversation, Tool, Toolkit } from "../src/index.js"
import { describeBackend, exampleLlm } from "./support/backend.js"

/** What speech-to-text hears: interim transcripts while the user speaks, then the final one. */
interface Transcript {
  readonly final: boolean
  readonly text: string
}

/** Speech-to-text: the user's utterances, each a stream of transcripts ending with the final one. */
class SpeechToText extends Context.Tag("examples/SpeechToText")<SpeechToText, {
  readonly utterances: ReadonlyArray<ReadonlyArray<Transcript>>
}>() {}

/** The synthesiser: speaks a chunk (completing when it has been played) or a filler phrase. */
class Synthesiser extends Context.Tag("examples/Synthesiser")<Synthesiser, {
  readonly name: string
  readonly speak: Conversation.SpeechSink
  readonly filler: (text: string) => Effect.Effect<void>
}>() {}

const scripted = Layer.succeed(SpeechToText, {
  utterances: [
    [
      { final: false, text: "set a timer for ten minutes" },
      { final: true, text: "Set a timer for ten minutes." }
    ],
    [
      { final: false, text: "what's the weather" },
      { final: true, text: "How do I know when the pasta is done?" }
    ],
    [{ final: true, text: "Thanks, that's all." }]
  ]
})

/** Playing takes time per word, as a synthesiser's audio does; `progress` reports the words played. */
const play = (chunk: string, progress: (played: string) => Effect.Effect<void>) =>
  Effect.forEach(
    chunk.split(" "),
    (_, i, words = chunk.split(" ")) =>
      Effect.zipRight(Effect.sleep("15 millis"), progress(words.slice(0, i + 1).join(" "))),
    { discard: true }
  )

const printing = Layer.succeed(Synthesiser, {
  name: "printing",
  speak: (chunk, progress, started) =>
    Effect.zipRight(Effect.zipRight(started, Console.log(`🔊 ${chunk}`)), play(chunk, progress)),
  filler: (text) => Console.log(`🔊 (filler) ${text}`)
})

/** espeak-ng writes each chunk to a WAV file; "playing" it then takes its time, word by word. */
const espeak = (dir: string) => {
  let n = 0
  const synthesise = (text: string) =>
    Effect.async<string, Error>((resume) => {
      const file = join(dir, `${String(++n).padStart(2, "0")}.wav`)
      execFile("espeak-ng", ["-w", file, text], (error) => resume(error ? Effect.fail(error) : Effect.succeed(file)))
    })
  const written = (file: string) => Console.log(`   wav ${file} (${statSync(file).size} bytes)`)
  return Layer.succeed(Synthesiser, {
    name: `espeak-ng (WAV files in ${dir})`,
    speak: (chunk, progress, started) =>
      Effect.orDie(synthesise(chunk)).pipe(
        Effect.tap((file) => Effect.zipRight(Console.log(`🔊 ${chunk}`), written(file))),
        Effect.zipRight(started),
        Effect.zipRight(play(chunk, progress))
      ),
    filler: (text) =>
      Effect.orDie(synthesise(text)).pipe(
        Effect.flatMap((file) => Effect.zipRight(Console.log(`🔊 (filler) ${text}`), written(file)))
      )
  })
}

const hasEspeak = () =>
  Effect.async<boolean>((resume) => {
    execFile("espeak-ng", ["--version"], (error) => resume(Effect.succeed(error === null)))
  })

const SynthesiserLive = Layer.unwrapEffect(Effect.gen(function*() {
  if (process.env.VOICE_SINK === "print" || !(yield* hasEspeak())) return printing
  return espeak(process.env.VOICE_WAV_DIR ?? mkdtempSync(join(tmpdir(), "effect-llm-voice-")))
}))

/** The kitchen timer: a side effect, so a speculative generation waits for the final transcript to run it. */
const setTimer = Tool.make("set_timer", {
  description: "Start a kitchen timer",
  parameters: Schema.Struct({ minutes: Schema.Number }),
  handler: ({ minutes }) =>
    Effect.as(
      Effect.zipRight(
        Console.log(`   ⏲ set_timer(${minutes}) runs: the transcript is final`),
        Effect.sleep("50 millis")
      ),
      `timer set for ${minutes} minutes`
    ),
  waitForFinal: true
})

const toolkit = Toolkit.make(setTimer)

/** The assistant: each utterance's interim transcripts start a speculative answer; the final one is spoken. */
const assistant = Effect.gen(function*() {
  const stt = yield* SpeechToText
  const synthesiser = yield* Synthesiser
  const conversation = yield* Conversation.Conversation
  yield* Console.log(`Backend: ${describeBackend()}; speech: ${synthesiser.name}`)
  for (const [turn, utterance] of stt.utterances.entries()) {
    for (const transcript of utterance) {
      if (!transcript.final) {
        yield* Console.log(`… (interim) ${transcript.text}`)
        yield* conversation.preempt(transcript.text, { toolkit })
        // the user is still speaking: the final transcript comes a moment later
        yield* Effect.sleep("250 millis")
        continue
      }
      yield* Console.log(`User: ${transcript.text}`)
      // the second answer is cut short: the user speaks again once its second chunk was heard
      const bargeIn = yield* Deferred.make<void>()
      let chunks = 0
      const sink: Conversation.SpeechSink = (chunk, progress, started) =>
        Effect.suspend(() =>
          ++chunks === 3 && turn === 1
            ? Effect.zipRight(Deferred.succeed(bargeIn, undefined), Effect.never)
            : synthesiser.speak(chunk, progress, started)
        )
      const before = yield* conversation.speculation
      const speaking = yield* Effect.fork(conversation.speak(transcript.text, {
        toolkit,
        sink,
        silenceAfter: "300 millis",
        onEvent: (event) =>
          event._tag === "ToolExecutionStart"
            ? synthesiser.filler("Let me set that timer.")
            : event._tag === "Silence"
            ? synthesiser.filler("Hmm.")
            : Effect.void,
        onMetrics: (metrics) =>
          Console.log(
            `   turn ${
              turn + 1
            }: first token ${metrics.firstTokenMillis} ms, first chunk ${metrics.firstChunkMillis} ms, first audio ${metrics.firstAudioMillis} ms, ${metrics.outputTokens} tokens${
              metrics.interrupted ? ", interrupted" : ""
            }`
          )
      }))
      yield* Effect.raceFirst(
        Fiber.join(speaking),
        Deferred.await(bargeIn).pipe(
          Effect.zipRight(Console.log("✋ barge-in: the user speaks again")),
          Effect.zipRight(Fiber.interrupt(speaking))
        )
      )
      const after = yield* conversation.speculation
      if (after.reused > before.reused) yield* Console.log("   (answered with the generation started on the interim)")
      if (after.wasted > before.wasted) {
        yield* Console.log("   (the interim's generation was discarded: the user said something else)")
      }
    }
  }
  const context = yield* conversation.context
  const stats = yield* conversation.speculation
  yield* Console.log(`History: ${context.messages.map((m) => m.role).join(" > ")}`)
  const heard = context.messages.find((m) => m.role === "assistant" && m.interrupted === true)
  yield* Console.log(`Heard before the barge-in: ${heard?.content}`)
  yield* Console.log(`Speculation: ${stats.started} started, ${stats.reused} reused, ${stats.wasted} wasted`)
})

const AppLive = Layer.mergeAll(
  scripted,
  SynthesiserLive,
  Conversation.layer({ systemMessage: "You are a kitchen voice assistant. Answer in short sentences." })
).pipe(Layer.provide(exampleLlm([
  // turn 1, started speculatively on the interim transcript: the timer tool waits for the final one
  { kind: "reply", text: "", toolCalls: [{ id: "t1", name: "set_timer", arguments: { minutes: 10 } }] },
  { kind: "reply", text: "Your timer is set for ten minutes. I'll tell you when it rings.", chunkSize: 6 },
  // turn 2's speculation, on an interim transcript the final one does not match: wasted
  { kind: "reply", text: "It's sunny today.", chunkSize: 6 },
  // turn 2, afresh; the user interrupts after two chunks
  {
    kind: "reply",
    text:
      "Taste a piece a minute before the time on the packet. It should be tender but still firm in the middle. Drain it at once, and keep a cup of the water for the sauce. Then toss it in the pan.",
    chunkSize: 8,
    delayMs: 5
  },
  // turn 3: the server takes a while to start answering, and the silence is filled
  { kind: "reply", text: "You're welcome. Enjoy your pasta!", chunkSize: 6, firstEventDelayMs: 600 }
])))

assistant.pipe(Effect.provide(AppLive), Effect.runPromise)
