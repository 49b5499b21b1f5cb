"""The asyncio client (`AsyncIbkrClient`, `AsyncIbkrWsClient`): the sync client's flows and policy, with
non-blocking I/O. Importing this package imports nothing heavy; `aio.transport` loads `aiohttp`."""
