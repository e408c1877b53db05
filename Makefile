# Aliases only: every target runs one Invoke task, and the logic lives in tasks.py and migrate/.
# ENV picks the environment (envs/$(ENV).env) for status and migrate: `make status ENV=staging`.
INV ?= inv
ENV ?= local

.PHONY: dev-start start stop status migrate test

dev-start:  ## local stack: docker compose if Docker works here, else embedded PostgreSQL + migrate
	$(INV) dev-start

start:  ## the stack with docker compose and the production environment
	$(INV) start --env production

stop:  ## docker compose down (when Docker works here) and stop the embedded PostgreSQL
	$(INV) stop

status:  ## every migration of every track and its state
	$(INV) status --env $(ENV)

migrate:  ## apply pending migrations to $(ENV)
	$(INV) migrate --env $(ENV)

test:  ## the test suite
	$(INV) test
