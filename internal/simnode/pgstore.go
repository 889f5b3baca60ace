package simnode

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresStore is a Store in one PostgreSQL database. Writes go over one
// connection, serialized; each half is one local transaction (balance update
// and journal row together).
type PostgresStore struct {
	name string
	mu   sync.Mutex
	conn *pgx.Conn
}

var _ Store = (*PostgresStore)(nil)

const pgSchema = `
CREATE TABLE IF NOT EXISTS simnode_meta (
	id            int PRIMARY KEY CHECK (id = 1),
	initial_total bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS simnode_accounts (
	account text PRIMARY KEY,
	balance bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS simnode_transfers (
	txn_id     text PRIMARY KEY,
	account    text NOT NULL REFERENCES simnode_accounts (account),
	amount     bigint NOT NULL,
	written_at timestamptz NOT NULL,
	written_ns bigint NOT NULL
);
INSERT INTO simnode_meta (id, initial_total) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
`

// ParseDSN checks a PostgreSQL DSN (URL or key=value form) without
// connecting; the error names which DSN (label, e.g. "--dsn-a") is wrong.
func ParseDSN(label, dsn string) (*pgx.ConnConfig, error) {
	if dsn == "" {
		return nil, fmt.Errorf("%s: empty PostgreSQL DSN", label)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%s: malformed PostgreSQL DSN: %w", label, err)
	}
	return cfg, nil
}

// OpenPostgresStore connects store name ("A" or "B") to dsn and creates its
// tables if missing.
func OpenPostgresStore(ctx context.Context, name, dsn string) (*PostgresStore, error) {
	cfg, err := ParseDSN("store "+name, dsn)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store %s: connect to %s:%d/%s: %w", name, cfg.Host, cfg.Port, cfg.Database, err)
	}
	if _, err := conn.Exec(ctx, pgSchema); err != nil {
		_ = conn.Close(ctx)
		return nil, fmt.Errorf("store %s: create tables in %s: %w", name, cfg.Database, err)
	}
	return &PostgresStore{name: name, conn: conn}, nil
}

// Name implements Store.
func (s *PostgresStore) Name() string { return s.name }

// Init implements Store: it inserts missing accounts and adds their initial
// balance to the recorded initial total, in one transaction.
func (s *PostgresStore) Init(ctx context.Context, accounts []string, initial int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx,
			`INSERT INTO simnode_accounts (account, balance) SELECT unnest($1::text[]), $2 ON CONFLICT (account) DO NOTHING`,
			accounts, initial)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE simnode_meta SET initial_total = initial_total + $1 WHERE id = 1`, tag.RowsAffected()*initial)
		return err
	})
	if err != nil {
		return fmt.Errorf("store %s: init %d accounts: %w", s.name, len(accounts), err)
	}
	return nil
}

// Apply implements Store.
func (s *PostgresStore) Apply(ctx context.Context, h Half) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE simnode_accounts SET balance = balance + $1 WHERE account = $2`, h.Amount, h.Account)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("no account %q", h.Account)
		}
		_, err = tx.Exec(ctx,
			`INSERT INTO simnode_transfers (txn_id, account, amount, written_at, written_ns) VALUES ($1, $2, $3, $4, $5)`,
			h.TxnID, h.Account, h.Amount, h.At, h.At.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("store %s: txn %s: %w", s.name, h.TxnID, err)
	}
	return nil
}

// Read implements Store; it reads in one repeatable-read snapshot.
func (s *PostgresStore) Read(ctx context.Context) (StoreState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := readPostgres(ctx, s.conn)
	if err != nil {
		return StoreState{}, fmt.Errorf("store %s: %w", s.name, err)
	}
	return st, nil
}

// Close implements Store.
func (s *PostgresStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.conn.Close(ctx)
}

func readPostgres(ctx context.Context, conn *pgx.Conn) (StoreState, error) {
	st := StoreState{Halves: map[string]Half{}}
	err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT initial_total FROM simnode_meta WHERE id = 1`).Scan(&st.InitialTotal); err != nil {
			return fmt.Errorf("read simnode_meta: %w", err)
		}
		if err := tx.QueryRow(ctx, `SELECT count(*), coalesce(sum(balance), 0)::bigint FROM simnode_accounts`).Scan(&st.Accounts, &st.Balance); err != nil {
			return fmt.Errorf("read simnode_accounts: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT txn_id, account, amount, written_ns FROM simnode_transfers`)
		if err != nil {
			return fmt.Errorf("read simnode_transfers: %w", err)
		}
		var h Half
		var ns int64
		_, err = pgx.ForEachRow(rows, []any{&h.TxnID, &h.Account, &h.Amount, &ns}, func() error {
			h.At = time.Unix(0, ns)
			st.Halves[h.TxnID] = h
			return nil
		})
		if err != nil {
			return fmt.Errorf("read simnode_transfers: %w", err)
		}
		return nil
	})
	return st, err
}

// VerifyPostgres checks the transfer invariant directly on the two
// databases of a simulated node (for example after a point-in-time restore
// of both). Each database is read in one snapshot; the two reads are not
// atomic with each other, so run it on quiescent or restored databases.
func VerifyPostgres(ctx context.Context, dsnA, dsnB string) (Report, error) {
	// Parse both first: a malformed DSN fails before any connection.
	cfgA, errA := ParseDSN("dsnA", dsnA)
	cfgB, errB := ParseDSN("dsnB", dsnB)
	if err := errors.Join(errA, errB); err != nil {
		return Report{}, err
	}
	a, err := readPostgresDSN(ctx, "dsnA", cfgA)
	if err != nil {
		return Report{}, err
	}
	b, err := readPostgresDSN(ctx, "dsnB", cfgB)
	if err != nil {
		return Report{}, err
	}
	return Check(a, b), nil
}

func readPostgresDSN(ctx context.Context, label string, cfg *pgx.ConnConfig) (StoreState, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return StoreState{}, fmt.Errorf("%s: connect to %s:%d/%s: %w", label, cfg.Host, cfg.Port, cfg.Database, err)
	}
	st, err := readPostgres(ctx, conn)
	cerr := conn.Close(ctx)
	if err != nil {
		return StoreState{}, fmt.Errorf("%s (%s): %w", label, cfg.Database, err)
	}
	if cerr != nil {
		return StoreState{}, fmt.Errorf("%s (%s): close: %w", label, cfg.Database, cerr)
	}
	return st, nil
}
