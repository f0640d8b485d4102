// The conformance conversation, spoken by the OpenAI Agents SDK for JavaScript
// (@openai/agents-realtime, OpenAIRealtimeWebSocket pointed at rtrec with `url`).
//
//   node client.mjs BASE_URL AUDIO_DIR RUNS      (the protocol of tests/clients/clientrun.py)
//
// As a voice app does: audio goes out from a loop of its own (the "microphone", 20 ms
// frames) while the session's handlers react to server events; the SDK runs the tool when
// the model calls it and truncates the reply the user talks over. The user listens to each
// reply to its end before speaking again, except the long one, which they interrupt as soon
// as it starts. Each run prints one JSON
// line: {"run": N, "ok": true, "seconds": S} or {"run": N, "ok": false, "error": "..."}.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import {
  OpenAIRealtimeWebSocket,
  RealtimeAgent,
  RealtimeSession,
  tool,
} from '@openai/agents-realtime';
import { z } from 'zod';

const STEP_TIMEOUT_MS = 20000;
const FRAME = (24000 * 2) / 50; // 20 ms of PCM16 at 24 kHz
const BYTES_PER_MS = (24000 * 2) / 1000; // the session's output audio: PCM16 at 24 kHz

const getWeather = tool({
  name: 'get_weather',
  description: 'Get the current weather for a city.',
  parameters: z.object({ city: z.string(), unit: z.string() }),
  execute: async ({ city, unit }) => JSON.stringify({ city, temperature: 14, unit }),
});

const agent = new RealtimeAgent({
  name: 'Assistant',
  instructions: 'You are a helpful voice assistant.',
  tools: [getWeather],
});

// Everything the session reports, in order, as names; "raw:TYPE" for the server's events.
class Talk {
  constructor(session, audioDir) {
    this.session = session;
    this.audioDir = audioDir;
    this.seen = [];
    this.tools = [];
    this.waiters = [];
    this.failure = null;
    this.closing = false;
    this.mic = null;
    const note = (name) => {
      this.seen.push(name);
      for (const wake of this.waiters.splice(0)) wake();
    };
    // when the reply audio received so far has finished playing (ms, performance.now()), as
    // the SDK reckons it (played in real time from its first delta), and so as a person
    // would hear it
    this.playedUntil = 0;
    const replies = new Map();
    for (const name of ['audio', 'audio_interrupted', 'agent_tool_end']) {
      session.on(name, (...args) => {
        if (name === 'agent_tool_end') this.tools.push(args[3]);
        if (name === 'audio') {
          const { responseId, data } = args[0];
          const [start, total] = replies.get(responseId) ?? [performance.now(), 0];
          replies.set(responseId, [start, total + data.byteLength]);
          const end = start + (total + data.byteLength) / BYTES_PER_MS;
          this.playedUntil = Math.max(this.playedUntil, end);
        }
        note(name);
      });
    }
    session.on('transport_event', (event) => note(`raw:${event.type}`));
    // the SDK reports no close code; a close we did not ask for ends the run at once
    session.transport.on('connection_change', (status) => {
      if (status === 'disconnected' && !this.closing) {
        this.failure = new Error('the server closed the connection');
        note('disconnected');
      }
    });
    session.on('error', (error) => {
      this.failure = new Error(`error event: ${JSON.stringify(error.error ?? error)}`);
      note('error');
    });
  }

  mark() {
    return this.seen.length;
  }

  // Wait until `count` events named `name` were seen since `since` (default: now).
  async until(name, count = 1, since = this.mark()) {
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    for (;;) {
      if (this.failure) throw this.failure;
      if (this.seen.slice(since).filter((n) => n === name).length >= count) return;
      const left = deadline - Date.now();
      if (left <= 0) {
        const tail = this.seen.slice(-8).join(', ');
        throw new Error(`timed out waiting for ${name} (last events: ${tail})`);
      }
      await new Promise((wake) => {
        this.waiters.push(wake);
        setTimeout(wake, left);
      });
    }
  }

  // Wait until the reply has been heard to its end, as a person does before speaking again
  // (without talking over it, the SDK has nothing to truncate).
  async listen() {
    const left = this.playedUntil - performance.now();
    if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
  }

  speak(name) {
    const data = readFileSync(join(this.audioDir, `${name}.pcm`));
    this.mic = (async () => {
      for (let i = 0; i < data.length; i += FRAME) {
        const frame = data.subarray(i, Math.min(i + FRAME, data.length));
        this.session.sendAudio(frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.length));
        await tick();
      }
    })();
  }

  async heard() {
    if (this.mic) await this.mic;
  }
}

async function conversation(url, audioDir) {
  const transport = new OpenAIRealtimeWebSocket({ url: `${url}/realtime?model=gpt-realtime` });
  const session = new RealtimeSession(agent, { transport, model: 'gpt-realtime' });
  const talk = new Talk(session, audioDir);
  await session.connect({ apiKey: 'sk-test-not-a-key' });
  try {
    // a text turn
    session.sendMessage('What time is it?');
    await talk.until('raw:response.done');
    await talk.listen();
    // a voice turn
    talk.speak('hello');
    await talk.until('raw:response.done');
    await talk.heard();
    await talk.listen();
    // a function call: the SDK runs the tool, sends its output and asks for the answer
    let turn = talk.mark();
    talk.speak('weather');
    await talk.until('agent_tool_end', 1, turn);
    await talk.until('raw:response.done', 2, turn); // the call's response, then the answer
    await talk.heard();
    await talk.listen();
    if (talk.tools.length !== 1 || !talk.tools[0].includes('"temperature":14')) {
      throw new Error(`get_weather ran ${talk.tools.length} time(s): ${talk.tools}`);
    }
    // a barge-in: the user talks over the long reply as soon as it is heard
    talk.speak('joke');
    await talk.until('audio');
    await talk.heard();
    turn = talk.mark();
    talk.speak('stop');
    await talk.until('audio_interrupted', 1, turn);
    await talk.until('raw:response.done', 2, turn); // the cut reply, then the answer
    await talk.heard();
    // hang up once the last words are transcribed: the SDK asks for the transcribed item
    // (conversation.item.retrieve) when the transcript arrives, so nothing is cut off
    await talk.until('raw:conversation.item.input_audio_transcription.completed', 4, 0);
  } finally {
    talk.closing = true;
    session.close();
  }
}

const [url, audioDir, runs] = process.argv.slice(2);
for (let run = 0; run < Number(runs); run++) {
  const start = performance.now();
  let line;
  try {
    await conversation(url, audioDir);
    line = { run, ok: true, seconds: Math.round(performance.now() - start) / 1000 };
  } catch (error) {
    line = { run, ok: false, error: `${error.name}: ${error.message}` };
  }
  process.stdout.write(`${JSON.stringify(line)}\n`);
}
process.exit(0);
