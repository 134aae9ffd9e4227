/**
 * A conversation as a service: one `ConversationContext` behind a lock, with
 * `send` and `sendStream` that call the `Llm` (running tools when given a
 * toolkit) and record the turn. A turn is transactional: a failed call leaves
 * the conversation as it was; an interrupted stream (barge-in) is recorded as
 * the text the listener actually received.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as SynchronizedRef from "effect/SynchronizedRef"
import type { ConversationContext } from "./Context.js"
import { type ContextOptions, make as makeContext } from "./Context.js"
import type { LlmError } from "./errors.js"
import { Llm, type PromptCacheOption } from "./Llm.js"
import { AssistantMessage, type Message } from "./Message.js"
import type { CompletionResult, StreamEvent } from "./Reply.js"
import { TokenCounter } from "./TokenCounter.js"
import type { ToolExecutionError } from "./Tool.js"
import * as Toolkit from "./Toolkit.js"

/**
 * Per-turn options: completion options, plus a toolkit to run tools with.
 *
 * @since 0.1.0
 */
export interface SendOptions<R = never> extends Toolkit.RunOptions {
  readonly toolkit?: Toolkit.Toolkit<R> | undefined
}

/**
 * How a conversation uses the backend's prompt cache.
 *
 * @since 0.1.0
 */
export interface ConversationOptions {
  /**
   * Passed on each turn's calls (a turn's own `promptCache` wins): the key
   * (OpenAI's `prompt_cache_key`) is generated once per conversation, a
   * random UUID, unless given; the slot (llama-server's `id_slot`) is sent
   * only when given. `false`: no prompt caching.
   */
  readonly promptCache?: PromptCacheOption | false | undefined
}

/**
 * A conversation with the `Llm` in context.
 *
 * @since 0.1.0
 */
export class Conversation extends Context.Tag("effect-llm/Conversation")<Conversation, Conversation.Service>() {}

/**
 * The types of the `Conversation` service.
 *
 * @since 0.1.0
 */
export declare namespace Conversation {
  /**
   * What the conversation service offers.
   *
   * @since 0.1.0
   */
  export interface Service {
    /** The conversation so far. */
    readonly context: Effect.Effect<ConversationContext>
    /** Sends what the user said and records the whole turn once the reply is complete. */
    readonly send: <R = never>(
      userText: string,
      options?: SendOptions<R>
    ) => Effect.Effect<CompletionResult, LlmError | ToolExecutionError, R>
    /**
     * Streams the reply. The turn is recorded when the stream ends; if the
     * consumer stops early (barge-in), what it received is recorded, marked
     * interrupted; if the call fails, nothing is.
     */
    readonly sendStream: <R = never>(
      userText: string,
      options?: SendOptions<R>
    ) => Stream.Stream<StreamEvent, LlmError | ToolExecutionError, R>
    /** Replaces the conversation (e.g. one restored with `ConversationContext.decode`). */
    readonly set: (context: ConversationContext) => Effect.Effect<void>
    /**
     * Sends the conversation so far (the system prompt, the options' tools
     * and toolkit, the turns) for the backend to cache, generating nothing,
     * so the next turn's answer starts sooner: call it before the first user
     * turn. The history is not changed. `None`, with nothing sent, when the
     * backend has no prompt cache to warm (OpenRouter, a fallback chain, a
     * scripted `Llm`) or the conversation's caching is off.
     */
    readonly warm: <R = never>(options?: SendOptions<R>) => Effect.Effect<Option.Option<CompletionResult>, LlmError>
  }
}

const emptyKit: Toolkit.Toolkit<never> = { tools: new Map(), definitions: [] }

/**
 * Builds the service over a starting context.
 *
 * @since 0.1.0
 */
export const make = (
  initial: ConversationContext,
  options: ConversationOptions = {}
): Effect.Effect<Conversation.Service, never, Llm> =>
  Effect.gen(function*() {
    const llm = yield* Llm
    // one key for the whole conversation, so every turn is routed to the same cache
    const promptCache: PromptCacheOption | false = options.promptCache === false
      ? false
      : { ...options.promptCache, key: options.promptCache?.key ?? (yield* Effect.sync(() => crypto.randomUUID())) }
    const cached = <O extends { readonly promptCache?: PromptCacheOption | false | undefined }>(turn: O): O => ({
      ...turn,
      promptCache: turn.promptCache ?? promptCache
    })
    const counter = yield* Effect.serviceOption(TokenCounter)
    const count = Option.isSome(counter) ? counter.value.count : undefined
    const ref = yield* SynchronizedRef.make(initial)
    // one turn at a time, whether sent whole or streamed
    const turnLock = yield* Effect.makeSemaphore(1)

    const append = (context: ConversationContext, added: ReadonlyArray<Message>) =>
      added.reduce<ConversationContext>(
        (acc, message) =>
          message.role === "assistant"
            ? acc.addAssistant(message, count)
            : message.role === "tool"
            ? acc.addToolResult(message, count)
            : acc,
        context
      )

    const send = <R>(userText: string, turn: SendOptions<R> = {}) =>
      turnLock.withPermits(1)(SynchronizedRef.modifyEffect(ref, (context) => {
        const options = cached(turn)
        const started = context.addUser(userText, count)
        return Toolkit.run(started.messages, options.toolkit ?? (emptyKit as Toolkit.Toolkit<R>), options).pipe(
          Effect.provideService(Llm, llm),
          Effect.map(({ added, result }) => [result, append(started, added)] as const)
        )
      }))

    const sendStream = <R>(userText: string, turn: SendOptions<R> = {}) =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const options = cached(turn)
        // hold the conversation for the whole stream: turns never interleave
        yield* Effect.acquireRelease(turnLock.take(1), () => turnLock.release(1))
        const context = yield* SynchronizedRef.get(ref)
        const started = context.addUser(userText, count)
        let recorded = started
        let received: Array<string> = []
        let complete = false
        const onStep = (added: ReadonlyArray<Message>) =>
          Effect.sync(() => {
            recorded = append(recorded, added)
            received = []
          })
        yield* Effect.addFinalizer((exit) =>
          SynchronizedRef.update(ref, (current) => {
            if (current !== context) return current // someone else moved on meanwhile
            if (complete) return recorded
            if (Exit.isFailure(exit) && !Exit.isInterrupted(exit)) return current
            // barge-in: keep what the listener heard, never an unresolved tool call
            const heard = received.join("")
            return heard === ""
              ? recorded
              : recorded.addAssistant(new AssistantMessage({ content: heard, interrupted: true }), count)
          })
        )
        return Toolkit.stream(started.messages, options.toolkit ?? (emptyKit as Toolkit.Toolkit<R>), {
          ...options,
          onStep
        }).pipe(
          Stream.provideService(Llm, llm),
          Stream.tap((event) =>
            Effect.sync(() => {
              if (event._tag === "TextDelta") received.push(event.text)
              else if (event._tag === "Finish") complete = true
            })
          )
        )
      }))

    // under the turn lock: a warm-up never interleaves with a turn (nor lands in a slot a turn is using)
    const warm = <R>(turn: SendOptions<R> = {}) =>
      turnLock.withPermits(1)(Effect.flatMap(SynchronizedRef.get(ref), (context) => {
        const options = cached(turn)
        return Toolkit.warm(context.messages, options.toolkit ?? (emptyKit as Toolkit.Toolkit<R>), options).pipe(
          Effect.provideService(Llm, llm)
        )
      }))

    return {
      context: SynchronizedRef.get(ref),
      send,
      sendStream,
      set: (context) => SynchronizedRef.set(ref, context),
      warm
    } satisfies Conversation.Service
  })

/**
 * A conversation service starting empty with the given limits (default: 10 turns) and prompt cache use.
 *
 * @since 0.1.0
 */
export const layer = (options: ContextOptions & ConversationOptions = {}): Layer.Layer<Conversation, never, Llm> =>
  Layer.effect(Conversation, make(makeContext(options), options))
