-- A job's approval is looked up by its message: approval_for_message (for every
-- job a user actor works) and recover's NOT EXISTS (for every running job). Without
-- an index both scanned every approval ever made.
CREATE INDEX approvals_message ON approvals (message_id, id);
