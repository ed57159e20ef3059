"""A bare FastAPI endpoint served as the services are (uvicorn, one process), taking the same
registration body and answering 201 with nothing behind it: what the HTTP stack alone costs on
the machine, for the registrations' figure to be read against.

    python -m bench.bare_api PORT
"""

from __future__ import annotations

import asyncio
import sys
import uuid

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Registration(BaseModel):
    nik: str
    full_name: str
    birth_date: str
    sex: str
    occupation_code: str
    kelurahan_code: str
    address: str


class Registered(BaseModel):
    worker_id: uuid.UUID


@app.post("/workers", status_code=201)
async def register(body: Registration) -> Registered:
    return Registered(worker_id=uuid.uuid4())


@app.get("/health/ready")
async def ready() -> dict[str, bool]:
    return {"ready": True}


def main() -> None:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", lifespan="off"
    )
    asyncio.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
