/**
 * Interruption storm: 500 streams started at once, each interrupted at a
 * random point (while connecting, mid-text, mid-tool-call, while a tool runs,
 * in the second model call). Half are plain streams, half conversation turns
 * with tool loops. Afterwards: the server saw every connection finished or
 * closed, no fiber is left, nothing was logged, no unhandled rejection, every
 * conversation is valid and takes its next turn, and closing the layers
 * releases every socket and timer.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { storm } from "./workloads.js"

const streams = 500

describe("interruption storm", () => {
  it.live(`${streams} streams interrupted at random points leave nothing behind`, () =>
    Effect.gen(function*() {
      const figures = yield* storm({ streams })
      expect(figures.failures).toEqual([])
      expect(figures.failed).toBe(0)
      expect(figures.interrupted + figures.completed).toBe(streams)
      expect(figures.interrupted).toBeGreaterThan(streams / 2)
      // the server saw the interrupted requests closed by the client, and none is still open
      expect(figures.closedByClient).toBeGreaterThan(0)
      expect(figures.inFlightAfter).toBe(0)
      expect(figures.fibersAfter).toBe(0)
      expect(figures.badLogs).toEqual([])
      expect(figures.processErrors).toBe(0)
      // every conversation touched by an interrupted turn is valid, and goes on
      expect(figures.invalidConversations).toEqual([])
      expect(figures.continued).toBe(figures.conversations)
      expect(figures.recordedInterrupted).toBeGreaterThan(0)
      expect(figures.settledClosed).toBe(true)
      expect(figures.end.serverSockets).toBe(0)
      expect(figures.end.sockets).toBeLessThanOrEqual(figures.start.sockets)
      expect(figures.end.timers).toBeLessThanOrEqual(figures.start.timers)
    }), 60_000)
})
