"""A trivial SageMaker runtime on loopback for the load generator's ceiling: every POST is
answered at once with the same small KServe v2 JSON answer, so the generator, not the endpoint,
limits the rate. `python -m tritonbench.trivial_endpoint PORT_FILE` writes its port there.

asyncio with no HTTP framework: a few microseconds per request, far below the generator's cost.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

__all__ = ["ANSWER", "main"]

# The answer to every request: Y = [2.0], what the benchmark's one case expects for X = [1.0].
ANSWER = json.dumps(
    {
        "model_name": "trivial",
        "outputs": [{"name": "Y", "datatype": "FP32", "shape": [1], "data": [2.0]}],
    }
).encode()
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-amzn-RequestId: trivial\r\n"
    + f"Content-Length: {len(ANSWER)}\r\n\r\n".encode()
    + ANSWER
)


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            writer.write(_RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def _main(port_file: Path) -> None:
    server = await asyncio.start_server(_serve_connection, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    partial = port_file.with_name(port_file.name + ".partial")
    partial.write_text(str(port))
    os.replace(partial, port_file)
    async with server:
        await server.serve_forever()


def main() -> None:
    asyncio.run(_main(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
