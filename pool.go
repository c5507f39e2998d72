package kavach

import (
	"context"
	"errors"
	"sync"
)

// ErrPoolClosed is returned by Claim after Close.
var ErrPoolClosed = errors.New("pool closed")

// Pool keeps prepared (created and started) sandboxes of one configuration
// warm. Claim hands one out at once, or creates one on demand when the pool
// is empty; the pool refills itself in the background. A claimed sandbox
// belongs to the caller, who destroys it; it is never handed out twice.
type Pool struct {
	cfg    Config
	ready  chan *Sandbox
	refill chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// NewPool starts a pool that keeps size sandboxes ready. Like New, it
// keeps a deep copy of cfg.
func NewPool(ctx context.Context, cfg Config, size int) (*Pool, error) {
	if size < 1 {
		return nil, errors.New("kavach: pool size must be at least 1")
	}
	cfg = cfg.clone() // the pool owns its configuration; the caller keeps theirs
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Fail fast, with the real reason, when the configuration cannot run.
	first, err := prepare(ctx, cfg)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &Pool{cfg: cfg, ready: make(chan *Sandbox, size), refill: make(chan struct{}, 1), ctx: pctx, cancel: cancel}
	p.ready <- first
	p.wg.Add(1)
	go p.filler()
	p.kick()
	return p, nil
}

func prepare(ctx context.Context, cfg Config) (*Sandbox, error) {
	sb, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := sb.Start(ctx); err != nil {
		_ = sb.Destroy(context.WithoutCancel(ctx))
		return nil, err
	}
	return sb, nil
}

func (p *Pool) kick() {
	select {
	case p.refill <- struct{}{}:
	default:
	}
}

// filler tops the pool up whenever it is kicked, until Close.
func (p *Pool) filler() {
	defer p.wg.Done()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.refill:
		}
		for len(p.ready) < cap(p.ready) && p.ctx.Err() == nil {
			sb, err := prepare(p.ctx, p.cfg)
			if err != nil {
				break // Claim creates on demand and reports the error
			}
			select {
			case p.ready <- sb:
			default:
				_ = sb.Destroy(context.Background())
			}
		}
	}
}

// Claim returns a running sandbox, prepared in advance when one is ready.
func (p *Pool) Claim(ctx context.Context) (*Sandbox, error) {
	if p.ctx.Err() != nil {
		return nil, ErrPoolClosed
	}
	select {
	case sb, ok := <-p.ready:
		if !ok {
			return nil, ErrPoolClosed
		}
		p.kick()
		return sb, nil
	default:
	}
	p.kick()
	return prepare(ctx, p.cfg)
}

// Close stops refilling and destroys the sandboxes not yet claimed.
func (p *Pool) Close() error {
	p.once.Do(func() {
		p.cancel()
		p.wg.Wait()
		close(p.ready)
	})
	var errs []error
	for sb := range p.ready {
		errs = append(errs, sb.Destroy(context.Background()))
	}
	return errors.Join(errs...)
}
