/**
 * A conversation as a service: one `ConversationContext` behind a lock, with
 * `send` and `sendStream` that call the `Llm` (running tools when given a
 * toolkit) and record the turn. A turn is transactional: a failed call leaves
 * the conversation as it was; an interrupted stream (barge-in) is recorded as
 * the text the listener actually received; a spoken turn (`speak`) hands
 * the reply to a speech sink chunk by chunk and, interrupted, records what
 * the listener heard. A turn the server refuses as
 * longer than its context is pruned to fit and sent again, once
 * (`onOverflow`). While the user is still speaking, `preempt` starts the
 * reply to the interim transcript in the background; the turn on the final
 * text (`commit`) continues it when the text is the same.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SynchronizedRef from "effect/SynchronizedRef"
import { type ContextOptions, ConversationContext, make as makeContext } from "./Context.js"
import type { LlmError, LlmInvalidRequestError, LlmOutputError } from "./errors.js"
import * as ConversationStore from "./internal/conversationStore.js"
import { metered } from "./internal/meter.js"
import { LearnedRoom, OverflowTurn } from "./internal/overflowTurn.js"
import * as Projection from "./internal/projection.js"
import { ReplyCollector } from "./internal/replyCollector.js"
import * as Speculation from "./internal/speculation.js"
import * as VoiceMetrics from "./internal/voiceMetrics.js"
import { Llm, type PromptCacheOption } from "./Llm.js"
import { AssistantMessage, type Message, UserMessage } from "./Message.js"
import { CompletionResult, ResponseMetadata, type StreamEvent } from "./Reply.js"
import { type SentenceOptions, sentences } from "./Stream.js"
import type { ObjectOptions, ObjectResult } from "./StructuredOutput.js"
import * as Telemetry from "./Telemetry.js"
import { TokenCounter } from "./TokenCounter.js"
import type { ToolExecutionError } from "./Tool.js"
import * as Toolkit from "./Toolkit.js"
import { Usage } from "./Usage.js"

/**
 * Per-turn options: completion options, plus a toolkit to run tools with.
 *
 * @since 0.1.0
 */
export interface SendOptions<R = never> extends Toolkit.RunOptions {
  readonly toolkit?: Toolkit.Toolkit<R> | undefined
}

/**
 * Where a spoken turn's chunks go: plays `chunk` and completes when it has
 * been played (heard). Interrupted (barge-in), it may have called `progress`
 * with the part of the chunk played so far (the text up to the last word
 * spoken, say), which is then recorded too; a sink that never calls it
 * records whole chunks only. It may run `started` when the chunk's audio
 * starts playing: the turn's first one gives its `firstAudioMillis` (see
 * `TurnMetrics`); a sink that never runs it reports no audio time.
 *
 * @since 0.1.0
 */
export type SpeechSink<E = never, R = never> = (
  chunk: string,
  progress: (played: string) => Effect.Effect<void>,
  started: Effect.Effect<void>
) => Effect.Effect<void, E, R>

/**
 * A spoken turn's voice metrics, in milliseconds from the turn's start (when
 * `speak` was called): `firstTokenMillis` to the reply's first text (of any
 * step), `firstChunkMillis` to the first chunk handed to the sink,
 * `firstAudioMillis` to the sink's first `started`, each only when it
 * happened; `outputTokens`, the output tokens of the turn's model calls that
 * finished (a call cut off by barge-in reports none); `interrupted`, whether
 * the turn was (barge-in). In the result's `metadata.voice`, passed to
 * `SpeakOptions.onMetrics` and recorded as Effect metrics
 * (`effect_llm.voice.*`, see the README).
 *
 * @since 0.1.0
 */
export type TurnMetrics = NonNullable<ResponseMetadata["voice"]>

/**
 * A spoken turn's options: a turn's options, the sink that plays the reply,
 * and how the reply is cut into chunks (`LlmStream.sentences`' options).
 *
 * @since 0.1.0
 */
export interface SpeakOptions<E = never, R = never> extends SendOptions<R> {
  readonly sink: SpeechSink<E, R>
  readonly chunks?: SentenceOptions | undefined
  /**
   * Called once at the end of every spoken turn, completed, interrupted or
   * failed (then `interrupted` is false), with its `TurnMetrics`, after the
   * turn was recorded. It runs uninterruptibly: keep it short.
   */
  readonly onMetrics?: ((metrics: TurnMetrics) => Effect.Effect<void>) | undefined
  /**
   * Sees every event of the turn as it arrives, before it is cut into
   * chunks: `ToolExecutionStart` (say "Let me check that"), `Silence` (fill
   * it), the text. What it plays is not part of the reply: the history does
   * not record it. The turn waits for it, so a long one should fork.
   */
  readonly onEvent?: ((event: StreamEvent) => Effect.Effect<void, E, R>) | undefined
}

/**
 * How a conversation uses the backend's prompt cache, and what a context overflow does.
 *
 * @since 0.1.0
 */
export interface ConversationOptions {
  /**
   * The conversation's id, which its calls' spans carry as
   * `gen_ai.conversation.id` (default: a random UUID), and under which it
   * is stored: a conversation with this id found in the store (Redis when
   * `SharedState` is, see "Running many instances" in the README) is
   * resumed, with its history, system message, limits and prompt-cache key.
   */
  readonly id?: string | undefined
  /**
   * Passed on each turn's calls (a turn's own `promptCache` wins): the key
   * (OpenAI's `prompt_cache_key`) is generated once per conversation, a
   * random UUID, unless given; the slot (llama-server's `id_slot`) is sent
   * only when given. `false`: no prompt caching.
   */
  readonly promptCache?: PromptCacheOption | false | undefined
  /**
   * What a context overflow (`isContextOverflow`: the server refused the
   * request as longer than its context) does to a turn. `"prune"` (the
   * default) prunes the earlier turns to fit, aiming below the size the
   * error gives (counted with the `TokenCounter` when provided), or drops
   * the older half of them when it gives none, and sends the refused step
   * again, once per turn; the turn is recorded on the pruned history.
   * The size learned that way stays with the conversation: a later turn
   * whose history outgrows it is pruned to three quarters of it before it
   * is sent, rather than refused first (a round trip a voice turn cannot
   * afford), and keeps its prompt-cache prefix for the turns after.
   * `"fail"` fails the turn with the error. Either way a failed turn leaves
   * the conversation as it was.
   */
  readonly onOverflow?: "prune" | "fail" | undefined
  /**
   * How long a conversation stored in Redis is kept after its last turn
   * (default 24 hours; `Duration.infinity`: until deleted). Zero or not a
   * duration: each turn fails with `LlmInvalidRequestError`, nothing sent.
   */
  readonly expiresAfter?: Duration.DurationInput | undefined
}

/**
 * How many speculative generations a conversation started (`preempt`), how
 * many a turn reused, and how many were wasted: dropped for another text or
 * a changed history, failed before the commit, or discarded.
 *
 * @since 0.1.0
 */
export interface SpeculationStats {
  readonly started: number
  readonly reused: number
  readonly wasted: number
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
    /** The conversation's id (`ConversationOptions.id`), as its calls' spans carry it. */
    readonly id: string
    /** The conversation so far. */
    readonly context: Effect.Effect<ConversationContext>
    /**
     * What the conversation's calls were billed for, summed (`Usage.sum`):
     * every call of every turn (tool steps, the retry after a context
     * overflow, warm-ups), failed and interrupted turns included when their
     * provider reported usage (`Usage.billed` of each reply, a failed call's
     * `error.usage`; a stream cut off before its end reported none). `set`
     * does not reset it. Its cost is absent once any call's was unknown.
     */
    readonly usage: Effect.Effect<Usage>
    /** Sends what the user said and records the whole turn once the reply is complete. */
    readonly send: <R = never>(
      userText: string,
      options?: SendOptions<R>
    ) => Effect.Effect<CompletionResult, LlmError | ToolExecutionError, R>
    /**
     * A turn answered with a value of `schema`, as `Toolkit.generateObject`
     * answers it over the history: tools may run first, `repair` sends an
     * invalid answer back. Once the value is decoded the turn is recorded:
     * the user message, the tool steps, and the answer (the JSON the model
     * wrote), without the repair exchange (the invalid answers and the
     * corrections sent). An answer that stays invalid, is refused or is
     * truncated (`LlmOutputError`), or a failed call, leaves the
     * conversation as it was. Like `send`, it discards a pending speculation.
     */
    readonly sendObject: <A, I, R = never>(
      userText: string,
      schema: Schema.Schema<A, I, never>,
      options?: SendOptions<R> & ObjectOptions
    ) => Effect.Effect<ObjectResult<A>, LlmError | LlmOutputError | ToolExecutionError, R>
    /**
     * Streams the reply. The turn is recorded when the stream ends; if the
     * consumer stops early (barge-in), what it received is recorded, marked
     * interrupted; if the call fails, nothing is.
     */
    readonly sendStream: <R = never>(
      userText: string,
      options?: SendOptions<R>
    ) => Stream.Stream<StreamEvent, LlmError | ToolExecutionError, R>
    /**
     * A spoken turn: the reply's text is cut into chunks (`LlmStream.sentences`
     * with `chunks`) and each is handed to `sink`, one at a time, in order;
     * tools run as in `sendStream`. Completed, the whole reply is recorded and
     * returned (the last step's, as `send` returns). Interrupted (barge-in:
     * the fiber running it is), the reply is recorded as what the listener
     * heard, marked interrupted: the chunks whose playback completed, joined
     * by spaces, and the part of the chunk in progress the sink reported;
     * nothing when nothing was heard. Running tool handlers are interrupted
     * too, except those of tools that are not `interruptible`, whose calls
     * and results are recorded. A failed call or sink leaves the
     * conversation as it was. The result's `metadata.voice` holds the
     * turn's `TurnMetrics`, which `onMetrics` is given at every turn's end.
     */
    readonly speak: <E = never, R = never>(
      userText: string,
      options: SpeakOptions<E, R>
    ) => Effect.Effect<CompletionResult, LlmError | ToolExecutionError | LlmInvalidRequestError | E, R>
    /**
     * Starts the reply to what the user is still saying (speech-to-text's
     * interim transcript) in a background fiber, on the history as it is
     * now, and returns at once. At most one speculation is pending: the
     * same text again (compared normalised: Unicode NFKC, case, spacing,
     * trailing punctuation) keeps it, another text interrupts it (closing
     * its request; counted wasted) and starts anew. It never touches the
     * history, takes no turn, and runs no tool that waits for the final
     * turn (`Tool.waitForFinal`); other tools may run. It ends with the
     * conversation.
     *
     * The next turn settles it. `commit`, `sendStream` and `speak` reuse it
     * when their text is the same and the history has not changed since:
     * what it produced is replayed, then the same generation continues live,
     * with the options it was started with; the waiting tools run once the
     * turn has caught up with their step; the user message recorded is the
     * final text. Otherwise, or when it failed before the turn, it is
     * interrupted and counted wasted, and the turn starts afresh, never
     * seeing its failure. `send` and `set` discard it.
     */
    readonly preempt: <R = never>(interimText: string, options?: SendOptions<R>) => Effect.Effect<void, never, R>
    /**
     * The turn on the user's final text, streamed as `sendStream` streams it
     * (and recorded alike): the pending speculation's generation when it
     * matches (see `preempt`), else a fresh one.
     */
    readonly commit: <R = never>(
      finalText: string,
      options?: SendOptions<R>
    ) => Stream.Stream<StreamEvent, LlmError | ToolExecutionError, R>
    /** Interrupts the pending speculation, if any (counted wasted). */
    readonly discard: Effect.Effect<void>
    /** How many speculations started, were reused and were wasted. */
    readonly speculation: Effect.Effect<SpeculationStats>
    /**
     * Replaces the conversation (e.g. one restored with `ConversationContext.decode`), in the store too,
     * whatever another process wrote; discards a pending speculation.
     */
    readonly set: (context: ConversationContext) => Effect.Effect<void>
    /**
     * Sends the conversation so far (the system prompt, the options' tools
     * and toolkit, the turns) for the backend to cache, generating nothing,
     * so the next turn's answer starts sooner: call it before the first user
     * turn. The history is not changed. `None`, with nothing sent, when the
     * backend has no prompt cache to warm (OpenRouter, a scripted `Llm`)
     * or the conversation's caching is off; a fallback chain warms its primary.
     */
    readonly warm: <R = never>(options?: SendOptions<R>) => Effect.Effect<Option.Option<CompletionResult>, LlmError>
  }
}

const emptyKit: Toolkit.Toolkit<never> = { tools: new Map(), definitions: [] }

/** A turn's toolkit: its own, or none. */
const kitOf = <R>(turn: SendOptions<R>): Toolkit.Toolkit<R> => turn.toolkit ?? (emptyKit as Toolkit.Toolkit<R>)

/**
 * What a spoken turn tells the streamed turn: when a step was recorded, and
 * what was heard of the step in progress; it is told each model call's usage.
 */
interface Listener {
  readonly onStep: (added: ReadonlyArray<Message>) => void
  readonly heard: () => string
  readonly onUsage: (usage: Usage) => void
}

/**
 * An object turn's messages without its repair exchange: each correction
 * sent (a user message) and the invalid answer before it.
 */
const withoutRepairs = (added: ReadonlyArray<Message>): ReadonlyArray<Message> => {
  if (!added.some((message) => message.role === "user")) return added
  const kept: Array<Message> = []
  for (const message of added) {
    if (message.role === "user") kept.pop()
    else kept.push(message)
  }
  return kept
}

/** `context` with its last user message saying `said` (a pruned turn's history, recorded with the final text). */
const saying = (context: ConversationContext, said: string): ConversationContext => {
  const history = [...context.history]
  for (let i = history.length - 1; i >= 0; i--) {
    if (history[i]!.role !== "user") continue
    history[i] = new UserMessage({ content: said })
    return new ConversationContext({ ...context, history }, true)
  }
  return context
}

/**
 * Builds the service over a starting context, or resumes the conversation
 * stored under `options.id` (in Redis when `SharedState` is; in this process
 * while another `Conversation` with that id is open). Each turn starts on the
 * stored conversation's newest version and is stored whole when it is
 * recorded. Closing the scope interrupts a pending speculative generation.
 *
 * @since 0.1.0
 */
export const make = (
  initial: ConversationContext,
  options: ConversationOptions = {}
): Effect.Effect<Conversation.Service, never, Llm | Scope.Scope> =>
  Effect.gen(function*() {
    let billed = Usage.zero
    const bill = (usage: Usage) => void (billed = Usage.add(billed, usage))
    // a streamed turn's replies are billed as their Finish passes the tool loop (`generate`), not by a stage of their own
    const llm = metered(yield* Llm, bill, { finishes: false })
    const speculations = yield* Speculation.make(yield* Effect.scope)
    const id = options.id ?? (yield* Effect.sync(() => crypto.randomUUID()))
    const counter = yield* Effect.serviceOption(TokenCounter)
    const count = Option.isSome(counter) ? counter.value.count : undefined
    // the conversation kept under its id: resumed when found, committed a whole turn at a time
    const stored = yield* ConversationStore.open(id, initial, {
      promptCacheKey: options.promptCache === false ? false : options.promptCache?.key,
      expiresAfter: options.expiresAfter,
      count,
      backend: llm
    })
    // one key for the whole conversation (kept with it in the store), so every turn is routed to the same cache
    const promptCache: PromptCacheOption | false = options.promptCache === false
      ? false
      : { ...options.promptCache, key: stored.promptCacheKey }
    const cached = <O extends { readonly promptCache?: PromptCacheOption | false | undefined }>(turn: O): O => ({
      ...turn,
      promptCache: turn.promptCache ?? promptCache
    })
    const ref = yield* SynchronizedRef.make(stored.local())
    // the store's newest version (another process's turns), the history a turn starts on
    const refresh = SynchronizedRef.updateAndGetEffect(ref, () => stored.latest)
    // one turn at a time, whether sent whole or streamed
    const turnLock = yield* Effect.makeSemaphore(1)
    const prunes = options.onOverflow !== "fail"
    // what overflows taught about the backend's context, for the turns after them
    const learned = new LearnedRoom()
    /** The turn started on `started`, and the `Llm` its steps call. */
    const turnOf = (started: ConversationContext) => {
      const overflow = new OverflowTurn(started, count, prunes ? learned : undefined)
      return { overflow, llm: prunes ? overflow.guard(llm) : llm }
    }

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

    /**
     * A turn's generation on `context` and `userText`: the tool loop's events, and the history to record
     * its steps on (pruned after an overflow), with the user message saying what the user finally said.
     */
    const generate = <R>(
      context: ConversationContext,
      userText: string,
      turn: SendOptions<R>,
      hooks: {
        readonly onStep: (added: ReadonlyArray<Message>) => Effect.Effect<void>
        readonly final?: Effect.Effect<void>
      }
    ): Speculation.Generation<R> => {
      const options = cached(turn)
      const started = context.addUser(userText, count)
      const { llm, overflow } = turnOf(started)
      // each step's usage (the loop emits only the last step's Finish), kept until a spoken turn listens
      const usages: Array<Usage> = []
      let onUsage: ((usage: Usage) => void) | undefined
      // every event of every step, in the loop's step bookkeeping (where the events are decoded):
      // the bill, each step's usage, and whether content went out
      const onEvent = (event: StreamEvent) => {
        if (event._tag === "Finish") {
          bill(Usage.billed(event))
          if (onUsage === undefined) usages.push(event.usage)
          else onUsage(event.usage)
        } else if (event._tag !== "Silence") {
          // content went out (a Silence is none): a refused step may no longer be sent again
          overflow.delivered = true
        }
      }
      return {
        events: Toolkit.streamOn(llm, started.messages, kitOf(options), { ...options, ...hooks, onEvent }),
        reportUsage: (listen) => {
          for (const usage of usages.splice(0)) listen(usage)
          onUsage = listen
        },
        recordedOn: (said) =>
          said === userText
            ? overflow.base
            : overflow.base === started
            ? context.addUser(said, count)
            : saying(overflow.base, said)
      }
    }

    /**
     * A turn answered whole (the text path: a pending speculation is dropped, not reused): `answer`
     * runs on the history with the user's message, and what it added is recorded, in one write, once
     * it succeeds.
     */
    const wholeTurn = <A, E, R, O extends SendOptions<R>>(
      userText: string,
      turn: O,
      answer: (
        messages: ReadonlyArray<Message>,
        kit: Toolkit.Toolkit<R>,
        options: O
      ) => Effect.Effect<{ readonly result: A; readonly added: ReadonlyArray<Message> }, E, Llm | R>
    ) =>
      Effect.zipRight(
        speculations.discard,
        turnLock.withPermits(1)(Effect.zipRight(
          refresh,
          SynchronizedRef.modifyEffect(ref, (context) => {
            const options = cached(turn)
            const started = context.addUser(userText, count)
            const { llm, overflow } = turnOf(started)
            return answer(started.messages, kitOf(options), options).pipe(
              Effect.provideService(Llm, llm),
              Effect.flatMap(({ added, result }) =>
                Effect.map(stored.commit(append(overflow.base, added)), (next) => [result, next] as const)
              ),
              Telemetry.withConversationId(id)
            )
          })
        ))
      )

    const send = <R>(userText: string, turn: SendOptions<R> = {}) =>
      wholeTurn(userText, turn, (messages, kit: Toolkit.Toolkit<R>, options) => Toolkit.run(messages, kit, options))

    const sendObject = <A, I, R>(
      userText: string,
      schema: Schema.Schema<A, I, never>,
      turn: SendOptions<R> & ObjectOptions = {}
    ) =>
      wholeTurn(userText, turn, (messages, kit: Toolkit.Toolkit<R>, options) =>
        Effect.map(
          Toolkit.generateObject(messages, kit, schema, options),
          ({ added, result }) => ({ result, added: withoutRepairs(added) })
        ))

    const streamTurn = <R>(userText: string, turn: SendOptions<R>, listener?: Listener) =>
      Projection.unwrapScoped(Effect.gen(function*() {
        // the turn's calls carry the conversation's id (a speculation's fiber sets it for its own)
        yield* Effect.locallyScoped(Telemetry.conversationId, id)
        // hold the conversation for the whole stream: turns never interleave; at its end, settle the turn, then let go
        const end: { settle?: (exit: Exit.Exit<unknown, unknown>) => Effect.Effect<void> } = {}
        yield* Effect.acquireRelease(
          turnLock.take(1),
          (_, exit) =>
            end.settle === undefined ? turnLock.release(1) : Effect.ensuring(end.settle(exit), turnLock.release(1))
        )
        const context = yield* refresh
        const steps: Array<Message> = []
        let received: Array<string> = []
        let complete = false
        const onStep = (added: ReadonlyArray<Message>) =>
          Effect.sync(() => {
            for (const message of added) {
              // a tool step cut short by barge-in keeps, in a spoken turn, the text that was heard of it
              steps.push(
                listener !== undefined && message.role === "assistant" && message.interrupted === true
                  ? new AssistantMessage({ ...message, content: listener.heard() }, true)
                  : message
              )
            }
            received = []
            listener?.onStep(added)
          })
        // the pending speculation when it is on this text and history (any other is dropped), else a fresh generation
        const adopted = yield* speculations.adopt(userText, context, onStep)
        const generation = adopted ?? generate(context, userText, turn, { onStep })
        // on the turn's base, which an overflow may have pruned
        const recorded = () => append(generation.recordedOn(userText), steps)
        const recordedAt = (current: ConversationContext, exit: Exit.Exit<unknown, unknown>) => {
          if (current !== context) return current // someone else moved on meanwhile
          // a spoken turn is complete once its last chunk was played
          if (complete && (listener === undefined || Exit.isSuccess(exit))) return recorded()
          if (Exit.isFailure(exit) && !Exit.isInterrupted(exit)) return current
          // barge-in: keep what the listener heard, never an unresolved tool call
          const heard = listener === undefined ? received.join("") : listener.heard()
          return heard === ""
            ? recorded()
            : recorded().addAssistant(new AssistantMessage({ content: heard, interrupted: true }), count)
        }
        // the turn is stored whole, in one write, or not at all
        const record = (exit: Exit.Exit<unknown, unknown>) =>
          SynchronizedRef.updateEffect(ref, (current) => stored.record(current, recordedAt(current, exit)))
        // an adopted speculation ends, and hands over its last steps, before the turn is recorded
        end.settle = adopted === undefined ? record : (exit) => Effect.zipRight(adopted.release, record(exit))
        if (listener !== undefined) generation.reportUsage(listener.onUsage)
        // a spoken turn records what was heard, so only the end matters here; else what was handed on, event by event
        return listener === undefined
          ? Projection.eachHandedOn(generation.events, (event) => {
            if (event._tag === "TextDelta") received.push(event.text)
            else if (event._tag === "Finish") complete = true
          })
          : Projection.mapEvents(generation.events, (events) => {
            if (events.some((event) => event._tag === "Finish")) complete = true
            return events
          })
      }))

    const sendStream = <R>(userText: string, turn: SendOptions<R> = {}) => streamTurn(userText, turn)

    const preempt = <R>(interimText: string, turn: SendOptions<R> = {}) =>
      Effect.flatMap(
        SynchronizedRef.get(ref),
        (context) =>
          speculations.preempt(interimText, context, (hooks) => {
            const generation = generate(context, interimText, turn, hooks)
            // the speculative fiber's calls carry the conversation's id too
            const events = Stream.unwrapScoped(
              Effect.as(Effect.locallyScoped(Telemetry.conversationId, id), generation.events)
            )
            return { ...generation, events }
          })
      )

    const speak = <E, R>(userText: string, turn: SpeakOptions<E, R>) =>
      Effect.clockWith((clock) => {
        const { chunks, onEvent, onMetrics, sink, ...options } = turn
        // the turn's voice metrics, in milliseconds from its start
        const start = clock.unsafeCurrentTimeMillis()
        const since = () => clock.unsafeCurrentTimeMillis() - start
        let firstToken: number | undefined
        let firstChunk: number | undefined
        let firstAudio: number | undefined
        let outputTokens = 0
        const metrics = (interrupted: boolean): TurnMetrics => ({
          ...(firstToken === undefined ? {} : { firstTokenMillis: firstToken }),
          ...(firstChunk === undefined ? {} : { firstChunkMillis: firstChunk }),
          ...(firstAudio === undefined ? {} : { firstAudioMillis: firstAudio }),
          outputTokens,
          interrupted
        })
        const started = Effect.sync(() => void (firstAudio ??= since()))
        // chunks are numbered as they are cut; those from `stepStart` on belong to the step in progress
        let cut = 0
        let stepStart = 0
        const played: Array<{ readonly index: number; readonly text: string }> = []
        let partial = ""
        // the reply `send` would return: the last step's
        let reply = new ReplyCollector()
        const listener: Listener = {
          onStep: (added) => {
            stepStart = cut
            // the chunk in progress was recorded with the step it was cut from
            if (added.some((message) => message.role === "assistant" && message.interrupted === true)) partial = ""
            if (added.some((message) => message.role === "tool")) reply = new ReplyCollector()
          },
          heard: () =>
            [...played.filter((chunk) => chunk.index >= stepStart).map((chunk) => chunk.text), partial]
              .filter((text) => text !== "")
              .join(" "),
          onUsage: (usage) => void (outputTokens += usage.outputTokens)
        }
        const progress = (text: string) => Effect.sync(() => void (partial = text.trim()))
        const seen = (event: StreamEvent) => {
          if (firstToken === undefined && event._tag === "TextDelta") firstToken = since()
          reply.push(event)
        }
        const turnEvents = streamTurn(userText, options, listener)
        // only a caller's onEvent needs an effect per event; else the turn's events, its sentences included,
        // are all handled where they are decoded
        const events = onEvent === undefined
          ? Projection.mapEvents(turnEvents, (batch) => {
            for (const event of batch) seen(event)
            return batch
          })
          : Stream.tap(turnEvents, (event) => Effect.zipRight(Effect.sync(() => seen(event)), onEvent(event)))
        return sentences(events, chunks).pipe(
          Stream.map((text) => ({ index: cut++, text })),
          Stream.runForEach((chunk) =>
            Effect.zipRight(
              Effect.suspend(() => {
                partial = ""
                firstChunk ??= since()
                return sink(chunk.text, progress, started)
              }),
              Effect.sync(() => {
                played.push(chunk)
                partial = ""
              })
            )
          ),
          Effect.flatMap(() => {
            const result = reply.result()
            return result === undefined
              ? Effect.dieMessage("Conversation.speak: the turn ended without a reply")
              : Effect.succeed(
                new CompletionResult({
                  ...result,
                  metadata: new ResponseMetadata({ ...result.metadata, voice: metrics(false) }, true)
                }, true)
              )
          }),
          Effect.onExit((exit) => {
            const turnMetrics = metrics(Exit.isInterrupted(exit))
            return Effect.zipRight(VoiceMetrics.record(turnMetrics), onMetrics?.(turnMetrics) ?? Effect.void)
          })
        )
      })

    // under the turn lock: a warm-up never interleaves with a turn (nor lands in a slot a turn is using)
    const warm = <R>(turn: SendOptions<R> = {}) =>
      turnLock.withPermits(1)(Effect.flatMap(refresh, (context) => {
        const options = cached(turn)
        return Toolkit.warm(context.messages, kitOf(options), options).pipe(
          Effect.provideService(Llm, llm),
          Telemetry.withConversationId(id)
        )
      }))

    return {
      id,
      // the store's newest version when no turn is running, else this process's
      context: Effect.zipRight(Effect.ignore(turnLock.withPermitsIfAvailable(1)(refresh)), SynchronizedRef.get(ref)),
      usage: Effect.sync(() => billed),
      send,
      sendObject,
      sendStream,
      speak,
      preempt,
      commit: sendStream,
      discard: speculations.discard,
      speculation: speculations.stats,
      set: (context) =>
        Effect.zipRight(speculations.discard, SynchronizedRef.updateEffect(ref, () => stored.replace(context))),
      warm
    } satisfies Conversation.Service
  })

/**
 * A conversation service starting empty with the given limits (default: 10
 * turns), prompt cache use and overflow behaviour (default: prune and retry
 * once), or resuming the one stored under `id` (see `make`). Releasing the
 * layer interrupts a pending speculative generation.
 *
 * @since 0.1.0
 */
export const layer = (options: ContextOptions & ConversationOptions = {}): Layer.Layer<Conversation, never, Llm> =>
  Layer.scoped(Conversation, make(makeContext(options), options))
