"""A minimal SMTP sink: answers 250 to everything and throws the messages away.

aiosmtpd parses and dispatches every command through a full state machine and tops out near
450 messages/s here, which would hide the cost of the client being measured. This sink only
reads lines and the DATA block, so the SMTP exchange costs what the network stack costs.

    python bench/sink.py [--port N] [--latency-ms MS] [--no-pipelining]
                                                        # prints "listening PORT" once ready

`--latency-ms` sends each reply that long after its command came, like a relay across a
network. It offers PIPELINING (RFC 2920), as Postfix, SES and the big providers do, unless
`--no-pipelining`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

END_OF_DATA = b"\r\n.\r\n"


LATENCY = 0.0  # seconds before each reply (--latency-ms)
EHLO = b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n"  # or without (--no-pipelining)


async def reply(writer: asyncio.StreamWriter, line: bytes) -> None:
    """Answer now, or LATENCY after the command came, as across a network: the answers to
    commands that came together (PIPELINING) leave together, one wait later."""
    if LATENCY:
        asyncio.get_running_loop().call_later(LATENCY, writer.write, line)
    else:
        writer.write(line)


async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 sink ESMTP\r\n")
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            verb = line[:4].upper()
            if verb == b"DATA":
                await reply(writer, b"354 go ahead\r\n")
                await reader.readuntil(END_OF_DATA)
                await reply(writer, b"250 accepted\r\n")
            elif verb == b"QUIT":
                await asyncio.sleep(LATENCY)  # the answers before it leave first
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            elif verb in (b"EHLO", b"HELO"):
                await reply(writer, EHLO)
            else:  # MAIL, RCPT, RSET, NOOP and anything else
                await reply(writer, b"250 ok\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def serve(port: int) -> None:
    server = await asyncio.start_server(session, "127.0.0.1", port, limit=1 << 22)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="wait this long before each reply"
    )
    parser.add_argument(
        "--no-pipelining", action="store_true", help="answer EHLO without PIPELINING"
    )
    args = parser.parse_args()
    global LATENCY, EHLO
    LATENCY = args.latency_ms / 1000
    if args.no_pipelining:
        EHLO = b"250-sink\r\n250 8BITMIME\r\n"
    try:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
