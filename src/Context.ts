/**
 * Conversation context: the history of a multi-turn conversation as an
 * immutable, JSON-encodable value, pruned so that providers never reject it.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import {
  assistant,
  AssistantMessage,
  Message,
  type ReasoningPartInput,
  SystemMessage,
  type ToolCallInput,
  ToolMessage,
  UserMessage
} from "./Message.js"
import { CompletionResult } from "./Reply.js"

/**
 * Counts the tokens of one message.
 *
 * @since 0.1.0
 */
export type CountTokens = (message: Message) => number

/**
 * A fast estimate: about four characters a token, plus a few tokens of
 * framing per message and per tool call; reasoning text counts too (a local
 * server reads it back).
 *
 * @since 0.1.0
 */
export const estimateTokens: CountTokens = (message) => {
  let chars = message.content.length
  if (message.role === "assistant") {
    for (const call of message.toolCalls) chars += call.name.length + JSON.stringify(call.arguments).length + 12
    for (const part of message.reasoning ?? []) chars += part.text.length
  }
  return Math.ceil(chars / 4) + 4
}

/**
 * One turn: a user message and everything up to the next user message.
 *
 * @since 0.1.0
 */
export interface Turn {
  readonly user: UserMessage
  readonly replies: ReadonlyArray<AssistantMessage | ToolMessage>
}

/**
 * How much history to keep.
 *
 * @since 0.1.0
 */
export interface ContextOptions {
  /** The system prompt, always kept. */
  readonly systemMessage?: string | undefined
  /** The most turns kept (default: 10). */
  readonly maxTurns?: number | undefined
  /** A token budget for the whole history, system message included. */
  readonly maxTokens?: number | undefined
}

/**
 * A conversation's history. Every `add` returns a new context; the history
 * is pruned to the newest whole turns within `maxTurns` and `maxTokens`, so it
 * never starts with an assistant or tool message and never separates a tool
 * call from its results.
 *
 * @since 0.1.0
 */
export class ConversationContext extends Schema.Class<ConversationContext>("effect-llm/ConversationContext")({
  systemMessage: Schema.optional(Schema.String),
  maxTurns: Schema.Number,
  maxTokens: Schema.optional(Schema.Number),
  history: Schema.Array(Message)
}) {
  /** The context as plain JSON, for persistence. */
  encode(): typeof ConversationContext.Encoded {
    return Schema.encodeSync(ConversationContext)(this)
  }

  private with(history: ReadonlyArray<Message>, count: CountTokens = estimateTokens): ConversationContext {
    return new ConversationContext({ ...this, history: prune(history, this, count) }, true)
  }

  /** Starts a new turn with what the user said, pruning the oldest turns. */
  addUser(content: string, count: CountTokens = estimateTokens): ConversationContext {
    return this.with([...this.history, new UserMessage({ content })], count)
  }

  /** Records the model's reply, keeping its tool calls and its reasoning. */
  addAssistant(
    reply: CompletionResult | AssistantMessage | {
      readonly content: string
      readonly toolCalls?: ReadonlyArray<ToolCallInput>
      readonly reasoning?: ReadonlyArray<ReasoningPartInput>
    },
    count: CountTokens = estimateTokens
  ): ConversationContext {
    const message = reply instanceof AssistantMessage
      ? reply
      : reply instanceof CompletionResult
      ? reply.toMessage()
      : assistant(reply.content, reply.toolCalls, { reasoning: reply.reasoning })
    return this.with([...this.history, message], count)
  }

  /** Records the result of a tool call. */
  addToolResult(result: {
    readonly toolCallId: string
    readonly name: string
    readonly content: string
    readonly isError?: boolean | undefined
  }, count: CountTokens = estimateTokens): ConversationContext {
    const { content, isError, name, toolCallId } = result
    return this.with(
      [...this.history, new ToolMessage({ toolCallId, name, content, ...(isError ? { isError } : {}) })],
      count
    )
  }

  /** Drops tool calls that never got a result (an interrupted tool step). */
  dropUnansweredToolCalls(): ConversationContext {
    return this.with(repair(this.history))
  }

  /** What to send: the system message, then the pruned, repaired history. */
  get messages(): ReadonlyArray<Message> {
    const history = repair(this.history)
    return this.systemMessage === undefined ? history : [new SystemMessage({ content: this.systemMessage }), ...history]
  }

  /** The history grouped into turns. */
  get turns(): ReadonlyArray<Turn> {
    const turns: Array<{ user: UserMessage; replies: Array<AssistantMessage | ToolMessage> }> = []
    for (const message of this.history) {
      if (message.role === "user") turns.push({ user: message, replies: [] })
      else if (message.role !== "system") turns[turns.length - 1]?.replies.push(message)
    }
    return turns
  }
}

/**
 * A new, empty conversation (keeping at most 10 turns unless `maxTurns` says otherwise).
 *
 * @since 0.1.0
 */
export const make = (options: ContextOptions = {}): ConversationContext =>
  new ConversationContext({
    ...(options.systemMessage === undefined ? {} : { systemMessage: options.systemMessage }),
    maxTurns: options.maxTurns ?? 10,
    ...(options.maxTokens === undefined ? {} : { maxTokens: options.maxTokens }),
    history: []
  })

/**
 * Decodes a context saved with `encode`.
 *
 * @since 0.1.0
 */
export const decode = (encoded: unknown): ConversationContext => Schema.decodeUnknownSync(ConversationContext)(encoded)

/**
 * Keeps the newest whole turns within the context's limits. The newest turn
 * is always kept. Linear in the history's length.
 */
const prune = (
  history: ReadonlyArray<Message>,
  limits: {
    readonly maxTurns: number
    readonly maxTokens?: number | undefined
    readonly systemMessage?: string | undefined
  },
  count: CountTokens
): ReadonlyArray<Message> => {
  // indexes where turns start, oldest first
  const starts: Array<number> = []
  for (let i = 0; i < history.length; i++) if (history[i]!.role === "user") starts.push(i)
  if (starts.length === 0) return []
  let keepFrom = starts.length - 1
  const budget = limits.maxTokens
  let used = budget === undefined || limits.systemMessage === undefined
    ? 0
    : count(new SystemMessage({ content: limits.systemMessage }, true))
  if (budget !== undefined) { for (let i = starts[keepFrom]!; i < history.length; i++) used += count(history[i]!) }
  while (keepFrom > 0 && starts.length - keepFrom < limits.maxTurns) {
    const candidate = keepFrom - 1
    if (budget !== undefined) {
      let turnTokens = 0
      for (let i = starts[candidate]!; i < starts[candidate + 1]!; i++) turnTokens += count(history[i]!)
      if (used + turnTokens > budget) break
      used += turnTokens
    }
    keepFrom = candidate
  }
  return keepFrom === 0 && starts[0] === 0 ? history : history.slice(starts[keepFrom])
}

/**
 * Removes what a provider would reject: tool results without their call and
 * tool calls without all their results. Linear.
 */
const repair = (history: ReadonlyArray<Message>): ReadonlyArray<Message> => {
  const out: Array<Message> = []
  let changed = false
  for (let i = 0; i < history.length; i++) {
    const message = history[i]!
    if (message.role === "tool") {
      changed = true // reached only for a tool message without a preceding call group
      continue
    }
    if (message.role !== "assistant" || message.toolCalls.length === 0) {
      out.push(message)
      continue
    }
    // collect the run of tool results that follows the call
    let end = i + 1
    const answered = new Set<string>()
    while (end < history.length && history[end]!.role === "tool") {
      answered.add((history[end] as ToolMessage).toolCallId)
      end++
    }
    const calls = new Set(message.toolCalls.map((call) => call.id))
    const complete = message.toolCalls.every((call) => answered.has(call.id))
    if (complete) {
      out.push(message)
      for (let j = i + 1; j < end; j++) {
        const result = history[j] as ToolMessage
        if (calls.has(result.toolCallId)) out.push(result)
        else changed = true
      }
    } else {
      changed = true
      // keep the text and its reasoning, drop the unanswered calls and their partial results
      if (message.content !== "") out.push(assistant(message.content, [], { reasoning: message.reasoning }))
    }
    i = end - 1
  }
  return changed ? out : history
}
