"""Subject access requests (GDPR Art. 15): find the requester in a CCTV archive and disclose only them.

`answer` runs the whole request: a temporary, consented enrolment of the
requester (`enrol`), a fast search of the archive (`archive`, `search`), an
export of each segment through the redaction pipeline with only the requester
left clear (`export`), and the disclosure package (`package`).
"""

from redactor_video.errors import RequestError
from redactor_video.sar.request import SubjectRequest, due_date
from redactor_video.sar.run import Outcome, answer, default_audit_path

__all__ = ["Outcome", "RequestError", "SubjectRequest", "answer", "default_audit_path", "due_date"]
