"""Device enrollment: a one-time code buys a device identity."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from schema.clock import iso
from schema.models import EnrollRequest, EnrollResponse
from schema.signing import b64d

from ..deps import ArchiveDep, BoxKey, ClockDep, SigningKey, parse_json
from ..errors import ApiError
from ..keys import public_key_b64
from ..openapi import request_body
from ..signed import sealed_lease

router = APIRouter(tags=["enrollment"])

# Anyone may call this unauthenticated endpoint: its body is bounded before it is
# parsed by the BodyLimit middleware (server/body_limit.py: the small cap).


@router.post("/v1/enroll", response_model=EnrollResponse,
             openapi_extra=request_body(EnrollRequest))
async def enroll(request: Request, archive: ArchiveDep, clock: ClockDep, key: SigningKey,
                 box_key: BoxKey) -> dict:
    body = parse_json(EnrollRequest, await request.body())
    try:
        sign_pub, box_pub = b64d(body.sign_public_key), b64d(body.box_public_key)
    except ValueError:
        raise ApiError(422, "invalid_key", "public keys must be base64 of 32 raw bytes") from None
    if len(sign_pub) != 32 or len(box_pub) != 32:
        raise ApiError(422, "invalid_key", "public keys must be base64 of 32 raw bytes")
    try:
        # Before the code is spent: a low-order X25519 key (e.g. all zeros) parses, but
        # no lease can ever be sealed to it.
        Ed25519PublicKey.from_public_bytes(sign_pub)
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(box_pub))
    except ValueError:
        raise ApiError(422, "invalid_key", "the public keys are not usable: generate new keys "
                                           "and enroll again") from None
    device = await run_in_threadpool(archive.enroll, body.code, body.device_name, sign_pub, box_pub)
    rep = await run_in_threadpool(archive.resolve_rep, device.rep_id)
    sealed = await run_in_threadpool(sealed_lease, key, box_key, archive, device.id, box_pub, None)
    epoch = await run_in_threadpool(archive.current_epoch)
    return {
        "device_id": device.id, "rep_id": device.rep_id, "rep_name": rep["name"],
        "server_sign_public_key": public_key_b64(key),
        "server_time": iso(clock.now()), "archive_epoch": epoch,
        "sealed_lease": sealed,
    }
