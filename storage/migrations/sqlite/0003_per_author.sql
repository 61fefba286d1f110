-- One user, several chats; one chat, several users (a group): a job and a pending
-- plan belong to the chat AND to the message's author. Without the author, one
-- group member's message claimed, superseded and answered another member's work.
ALTER TABLE reactive_jobs ADD COLUMN user_id INTEGER REFERENCES users (id);
UPDATE reactive_jobs SET user_id = (
    SELECT m.user_id FROM chat_messages m WHERE m.id = reactive_jobs.message_id
);
CREATE INDEX reactive_jobs_open ON reactive_jobs (user_id, thread_id, id)
    WHERE status IN ('queued', 'running');

ALTER TABLE approvals ADD COLUMN user_id INTEGER REFERENCES users (id);
UPDATE approvals SET user_id = (
    SELECT m.user_id FROM chat_messages m WHERE m.id = approvals.message_id
);
-- At most one pending plan per (thread, author): a new one supersedes the author's old one.
DROP INDEX approvals_one_pending;
CREATE UNIQUE INDEX approvals_one_pending ON approvals (thread_id, user_id)
    WHERE status = 'pending';
