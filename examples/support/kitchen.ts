/**
 * What the orchestrator examples share: the speech sink service (with a
 * console implementation), the kitchen timer tool, and the orchestrator's
 * service tag.
 */
import { Console, Context, Effect, Layer, Schema } from "effect"
import { Tool } from "../../src/index.js"

/** Where spoken sentences go (a TTS engine in the real assistant). */
export class SpeechSink extends Context.Tag("examples/SpeechSink")<
  SpeechSink,
  { readonly speak: (sentence: string) => Effect.Effect<void> }
>() {}

/** A speech sink that prints each sentence. */
export const ConsoleSpeech = Layer.succeed(SpeechSink, { speak: (sentence) => Console.log(`🔊 ${sentence}`) })

/** The kitchen timer tool. */
export const setTimer = Tool.make("set_timer", {
  description: "Start a kitchen timer",
  parameters: Schema.Struct({ minutes: Schema.Number }),
  handler: ({ minutes }) => Effect.succeed(`timer set for ${minutes} minutes`)
})

/** One user turn in, speech out. */
export class Orchestrator extends Context.Tag("examples/Orchestrator")<Orchestrator, {
  readonly handle: (userText: string) => Effect.Effect<void, unknown>
}>() {}
