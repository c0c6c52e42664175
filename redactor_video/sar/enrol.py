"""The requester's temporary, consented enrolment: a watchlist entry that exists for one run only.

The requester's photos become one entry with basis `consent`, category
`sar-requester` and the request id as its reference, checked by the same rules
as any watchlist entry (one face per photo, at least 80 px wide; basis and
category must fit). Its templates are never written to any file: between the
stages of the run they are held sealed (AES-256-GCM) under a key made for this
run alone, are unsealed only while the search or the export runs and zeroed as
that stage ends, and `destroy` discards key and ciphertext. Creation, refusal
and destruction are recorded in the audit log.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from redactor_video.audit import AuditLog
from redactor_video.detect.base import Detector
from redactor_video.errors import EnrolmentRefused, ProcessingError
from redactor_video.recognise.embedder import DIMENSIONS, Embedder
from redactor_video.recognise.watchlist import Entry, check_terms, enrol_photo, today_utc
from redactor_video.sar.request import SubjectRequest

BASIS = "consent"
CATEGORY = "sar-requester"
AUTHORISED_BY = "the data subject (subject access request)"


class TemporaryEnrolment:
    """The requester's entry for this run; use as a context manager so it is destroyed however the run ends."""

    def __init__(self, request: SubjectRequest, photos: Sequence[Path], detector: Detector, embedder: Embedder,
                 audit: AuditLog) -> None:
        self.request = request
        self.entry_id = "sar-" + secrets.token_hex(4)
        # Valid through tomorrow so a run that crosses midnight keeps its entry; it is destroyed long before.
        self.expires = check_terms(self.entry_id, BASIS, CATEGORY, (today_utc() + timedelta(days=1)).isoformat())
        self._audit = audit
        vectors: list[np.ndarray] = []
        try:
            if not photos:
                raise EnrolmentRefused("no photo of the requester was given")
            for photo in photos:
                vectors.append(enrol_photo(Path(photo), detector, embedder))
            templates = np.stack(vectors)
        except EnrolmentRefused as exc:
            audit.record("sar-enrolment-refused", request_id=request.request_id, reason=str(exc))
            raise
        finally:
            for vector in vectors:
                vector.fill(0.0)
        self.count = len(templates)
        self._key: bytes | None = AESGCM.generate_key(256)
        self._nonce = secrets.token_bytes(12)
        self._sealed: bytes | None = AESGCM(self._key).encrypt(self._nonce, templates.tobytes(), self._aad)
        templates.fill(0.0)
        audit.record("sar-enrolment-created", request_id=request.request_id, entry_id=self.entry_id, basis=BASIS,
                     category=CATEGORY, reference=request.request_id, photos=[Path(p).name for p in photos],
                     templates=self.count, expires=self.expires.isoformat(), stored="memory only, sealed")

    @property
    def _aad(self) -> bytes:
        return f"redactor sar {self.request.request_id} {self.entry_id}".encode()

    @contextmanager
    def entry(self) -> Iterator[Entry]:
        """The entry with its templates unsealed for one stage; they are zeroed when the stage ends."""
        if self._key is None or self._sealed is None:
            raise ProcessingError(f"the temporary enrolment for {self.request.request_id} was already destroyed")
        plain = bytearray(AESGCM(self._key).decrypt(self._nonce, self._sealed, self._aad))
        templates = np.frombuffer(plain, dtype=np.float64).reshape(self.count, DIMENSIONS)
        templates.flags.writeable = False
        try:
            yield Entry(self.entry_id, f"requester {self.request.request_id}", BASIS, self.request.request_id,
                        AUTHORISED_BY, CATEGORY, self.expires, (), templates)
        finally:
            plain[:] = bytes(len(plain))

    def destroy(self) -> None:
        """Discard the key and the sealed templates, and audit it; later calls do nothing."""
        if self._key is None:
            return
        self._key = self._sealed = None
        self._audit.record("sar-enrolment-destroyed", request_id=self.request.request_id, entry_id=self.entry_id)

    def __enter__(self) -> TemporaryEnrolment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()
