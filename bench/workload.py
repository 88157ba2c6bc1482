"""The calls every section makes, so the SDK, the floor and Lunary's SDK do the same work."""

from __future__ import annotations

USER_MESSAGE = {"role": "user", "content": "Hi! Can you help me find the invoice for my last order? The number is 4521."}
ASSISTANT_MESSAGE = {
    "role": "assistant",
    "content": "Of course. Order 4521 was invoiced on 3 March; I have sent the PDF to the address on "
    "your account. Anything else I can help you with?",
}
EVENT_NAME = "open-document"
EVENT_METADATA = {"documentName": "invoice-4521.pdf"}
FEEDBACK = {"thumb": "up"}
THREAD_TAGS = ["support"]
USER_ID = "user-42"
