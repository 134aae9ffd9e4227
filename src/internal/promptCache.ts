/**
 * What every codec's warm-up shares: the placeholder user turn after the
 * prefix to cache, and the refusal of a warm-up with caching off.
 *
 * @internal
 */
import type { CompletionOptions } from "../Llm.js"
import { type Message, UserMessage } from "../Message.js"

/** The text of the user turn a warm-up ends with: backends and chat templates want one, and it comes after every breakpoint. */
export const warmUpText = "warm-up"

/** The messages a warm-up sends: the prefix to cache, then the placeholder user turn. */
export const warmUpMessages = (messages: ReadonlyArray<Message>): ReadonlyArray<Message> => [
  ...messages,
  new UserMessage({ content: warmUpText })
]

/** Why a warm-up with these options cannot be sent, if it cannot. */
export const warmUpProblem = (options: CompletionOptions): string | undefined =>
  options.promptCache === false ? "a warm-up needs prompt caching, and promptCache is false" : undefined
