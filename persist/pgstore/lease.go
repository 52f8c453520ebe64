package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/captchafsm/captchafsm/persist"
)

// Leases are kept in the tasks table (owner, lease_until) and measured by
// the database server's clock, so that engines on hosts whose clocks
// disagree still agree on when a lease ends.

// claimSQL leases up to $2 free or expired tasks in claimable states to $1
// for $3 microseconds. SKIP LOCKED lets engines that claim at the same
// moment take different tasks instead of queueing on the same rows; the
// lease condition is checked again on rows that changed under the
// statement, so a task another engine has just claimed is skipped.
const claimSQL = `
WITH c AS (
    SELECT id FROM tasks
    WHERE state IN ('Submitting', 'Backoff', 'Polling', 'Resubmitting')
        AND (lease_until IS NULL OR lease_until <= now())
    ORDER BY next_at NULLS FIRST, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE tasks t SET owner = $1, lease_until = now() + $3 * interval '1 microsecond', lease_until_ns = 0
FROM c WHERE t.id = c.id
RETURNING ` + taskCols

// Claim leases to owner, until the server's now+ttl, up to limit tasks in
// Submitting, Backoff, Polling or Resubmitting whose lease is free or has
// expired, earliest NextAt first (a zero NextAt first of all), and returns
// them without Params. A task owner holds a live lease on is not returned
// again; one whose lease expired is, to owner as to any other engine.
func (s *Store) Claim(ctx context.Context, owner string, limit int, ttl time.Duration) ([]*persist.Task, error) {
	switch {
	case owner == "":
		return nil, errors.New("pgstore: claim: owner is empty")
	case limit < 0:
		return nil, fmt.Errorf("pgstore: claim: limit %d is negative", limit)
	case ttl < time.Microsecond:
		return nil, fmt.Errorf("pgstore: claim: lease ttl %v is under a microsecond", ttl)
	}
	if err := s.check(ctx, "claim"); err != nil {
		return nil, err
	}
	if limit == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, claimSQL, clean(owner), limit, ttl.Microseconds())
	if err != nil {
		return nil, s.fail(ctx, "claim", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*persist.Task, error) { return scanTask(row) })
	if err != nil {
		return nil, s.fail(ctx, "claim", err)
	}
	slices.SortFunc(out, func(a, b *persist.Task) int {
		if c := a.NextAt.Compare(b.NextAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Renew extends owner's leases on ids to the server's now+ttl and returns
// the ids owner no longer holds: taken over by another engine after the
// lease expired, released, or deleted. A lease that expired but that no
// other engine took is owner's still, and renewed.
func (s *Store) Renew(ctx context.Context, owner string, ids []string, ttl time.Duration) ([]string, error) {
	switch {
	case owner == "":
		return nil, errors.New("pgstore: renew: owner is empty")
	case ttl < time.Microsecond:
		return nil, fmt.Errorf("pgstore: renew: lease ttl %v is under a microsecond", ttl)
	}
	if err := s.check(ctx, "renew"); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	valid := validKeys(ids)
	rows, err := s.pool.Query(ctx,
		"UPDATE tasks SET lease_until = now() + $3 * interval '1 microsecond', lease_until_ns = 0 "+
			"WHERE owner = $1 AND id = ANY ($2) RETURNING id", clean(owner), valid, ttl.Microseconds())
	if err != nil {
		return nil, s.fail(ctx, "renew", err)
	}
	held, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.fail(ctx, "renew", err)
	}
	kept := make(map[string]bool, len(held))
	for _, id := range held {
		kept[id] = true
	}
	var lost []string
	for _, id := range ids {
		if !kept[id] {
			lost = append(lost, id)
		}
	}
	return lost, nil
}

// Release gives up owner's leases on ids, so that any engine can claim the
// tasks at once. Ids owner does not hold are left alone.
func (s *Store) Release(ctx context.Context, owner string, ids []string) error {
	if owner == "" {
		return errors.New("pgstore: release: owner is empty")
	}
	if err := s.check(ctx, "release"); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx,
		"UPDATE tasks SET owner = '', lease_until = NULL, lease_until_ns = 0 WHERE owner = $1 AND id = ANY ($2)",
		clean(owner), validKeys(ids))
	if err != nil {
		return s.fail(ctx, "release", err)
	}
	return nil
}

// validKeys drops the ids that no stored task can have (and that
// PostgreSQL would refuse as text).
func validKeys(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if checkKey("id", id) == nil {
			out = append(out, id)
		}
	}
	return out
}
