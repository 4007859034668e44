// etcd-driver: the etcd side of bench/compare-etcd.sh. It runs the same
// workloads as memcoord-bench, with the same options and the same report
// (text, or with --json one JSON object on the last line of stdout), using
// etcd's own Go client (clientv3 of Debian's golang-etcd-server-dev).
//
//	etcd-driver [--endpoints HOST:PORT,...] [--json] WORKLOAD [options]
//
// The workloads map onto etcd as directly as etcd allows:
//
//	put    Put of a random key of k/ (--keys)
//	get    Get (linearizable; --serializable: WithSerializable)
//	cas    Get, then Txn(If ModRevision(key) == the revision read,
//	       Then Put), retried with a fresh Get until it succeeds
//	mixed  70% get, 20% put, 10% read-then-CAS
//	watch  W watchers on one prefix, --inflight writers; latency = start of
//	       a write until every watcher has its event
//	list   one page (--list-limit keys) of k/ from a random key
//
// Keys are "<ns>/k/00000042" (etcd has no namespaces: --ns is a key
// prefix); --tier is accepted and ignored (etcd has no tiers).
//
// Build (offline, from Debian's packages):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o etcd-driver .
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.uber.org/zap"
	"google.golang.org/grpc/status"
)

// Threads per client (one gRPC connection each) when --clients is not
// given: the same rule as memcoord-bench.
const threadsPerClient = 16

// A read-then-CAS gives up after this many conflicts in a row (an error).
const casTriesMax = 1000

type config struct {
	endpoints    []string
	json         bool
	workload     string
	inflight     int
	clients      int
	duration     time.Duration
	ops          int64
	warmup       time.Duration
	keys         int
	hotKeys      int
	casRead      string
	valueSize    int
	tier         string
	serializable bool
	watchers     int
	listLimit    int
	preload      string
	timeout      time.Duration
	ns           string
}

type counts struct {
	ops, conflicts, casOK, reads, writes, records uint64
	errors                                        map[string]uint64
}

func (c *counts) add(o *counts) {
	c.ops += o.ops
	c.conflicts += o.conflicts
	c.casOK += o.casOK
	c.reads += o.reads
	c.writes += o.writes
	c.records += o.records
	for k, v := range o.errors {
		if c.errors == nil {
			c.errors = map[string]uint64{}
		}
		c.errors[k] += v
	}
}

func (c *counts) err(e error) {
	if c.errors == nil {
		c.errors = map[string]uint64{}
	}
	name := "INTERNAL"
	if s, ok := status.FromError(e); ok {
		name = s.Code().String()
	} else if e == context.DeadlineExceeded {
		name = "DeadlineExceeded"
	} else if e == errConflict {
		name = "CONFLICT"
	} else if e == errNotFound {
		name = "NOT_FOUND"
	}
	c.errors[name]++
}

func (c *counts) nErrors() uint64 {
	n := uint64(0)
	for _, v := range c.errors {
		n += v
	}
	return n
}

var errConflict = fmt.Errorf("conflict: gave up after %d tries", casTriesMax)

// A get of a preloaded key found nothing: the preload is missing.
var errNotFound = fmt.Errorf("not found")

type worker struct {
	id       int
	cli      *clientv3.Client
	rng      *rand.Rand
	value    []byte
	versions []int64 // cas cached: mod revision per owned key (0 = unknown)
	lat      []int64 // ns
	cnt      counts
	done     uint64 // atomic
}

type run struct {
	cfg        *config
	clients    []*clientv3.Client
	workers    []*worker
	measuring  int32 // atomic
	stop       int32 // atomic
	opsLeft    int64 // atomic
	startNs    int64
	lastEndNs  int64 // atomic
	monoOrigin time.Time
}

func (r *run) now() int64 { return int64(time.Since(r.monoOrigin)) }

func key(cfg *config, space string, i int) string {
	return fmt.Sprintf("%s/%s/%08d", cfg.ns, space, i)
}

func (r *run) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), r.cfg.timeout)
}

func (r *run) get(w *worker, k string, serializable bool, oc *counts) (int64, bool, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	var opts []clientv3.OpOption
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	resp, err := w.cli.Get(ctx, k, opts...)
	oc.reads++
	if err != nil {
		return 0, false, err
	}
	if len(resp.Kvs) == 0 {
		return 0, false, nil
	}
	return resp.Kvs[0].ModRevision, true, nil
}

func (r *run) put(w *worker, k string, oc *counts) error {
	ctx, cancel := r.ctx()
	defer cancel()
	_, err := w.cli.Put(ctx, k, string(w.value))
	oc.writes++
	return err
}

// Read-then-CAS until it succeeds; *cached (may be nil) is the mod
// revision the worker believes the key has, used instead of a read with
// --cas-read cached.
func (r *run) cas(w *worker, k string, cached *int64, oc *counts) error {
	cfg := r.cfg
	for tries := 0; tries < casTriesMax; tries++ {
		var rev int64
		if cfg.casRead == "cached" && cached != nil && *cached != 0 {
			rev = *cached
		} else {
			var err error
			rev, _, err = r.get(w, k, cfg.casRead != "linearizable", oc)
			if err != nil {
				return err
			}
		}
		ctx, cancel := r.ctx()
		resp, err := w.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).
			Then(clientv3.OpPut(k, string(w.value))).
			Commit()
		cancel()
		oc.writes++
		if err != nil {
			return err
		}
		if resp.Succeeded {
			oc.casOK++
			if cached != nil {
				*cached = resp.Header.Revision
			}
			return nil
		}
		oc.conflicts++
		if cached != nil {
			*cached = 0
		}
	}
	return errConflict
}

func (r *run) op(w *worker, oc *counts) error {
	cfg := r.cfg
	switch cfg.workload {
	case "put":
		return r.put(w, key(cfg, "k", w.rng.Intn(cfg.keys)), oc)
	case "get":
		_, found, err := r.get(w, key(cfg, "k", w.rng.Intn(cfg.keys)), cfg.serializable, oc)
		if err == nil && !found {
			return errNotFound
		}
		return err
	case "cas":
		if cfg.hotKeys > 0 {
			return r.cas(w, key(cfg, "cas", w.rng.Intn(cfg.hotKeys)), nil, oc)
		}
		owned := cfg.keys / cfg.inflight
		j := w.rng.Intn(owned)
		return r.cas(w, key(cfg, "cas", w.id+j*cfg.inflight), &w.versions[j], oc)
	case "mixed":
		i := w.rng.Intn(cfg.keys)
		k := key(cfg, "k", i)
		switch p := w.rng.Intn(100); {
		case p < 70:
			_, _, err := r.get(w, k, cfg.serializable, oc)
			return err
		case p < 90:
			return r.put(w, k, oc)
		default:
			return r.cas(w, k, nil, oc)
		}
	case "list":
		from := key(cfg, "k", w.rng.Intn(cfg.keys)) + "\x00"
		end := clientv3.GetPrefixRangeEnd(cfg.ns + "/k/")
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(int64(cfg.listLimit))}
		if cfg.serializable {
			opts = append(opts, clientv3.WithSerializable())
		}
		ctx, cancel := r.ctx()
		resp, err := w.cli.Get(ctx, from, opts...)
		cancel()
		oc.reads++
		if err == nil {
			oc.records += uint64(len(resp.Kvs))
		}
		return err
	}
	return fmt.Errorf("unknown workload")
}

func (r *run) workerMain(w *worker, wg *sync.WaitGroup) {
	defer wg.Done()
	cfg := r.cfg
	for atomic.LoadInt32(&r.stop) == 0 {
		measured := atomic.LoadInt32(&r.measuring) != 0
		if measured && cfg.ops > 0 && atomic.AddInt64(&r.opsLeft, -1) < 0 {
			break
		}
		oc := counts{}
		t0 := r.now()
		err := r.op(w, &oc)
		t1 := r.now()
		if err != nil {
			oc.err(err)
		}
		atomic.AddUint64(&w.done, 1)
		if !measured || (cfg.ops == 0 && atomic.LoadInt32(&r.stop) != 0) {
			continue
		}
		oc.ops = 1
		w.cnt.add(&oc)
		w.lat = append(w.lat, t1-t0)
		if cfg.ops > 0 {
			for {
				last := atomic.LoadInt64(&r.lastEndNs)
				if last >= t1 || atomic.CompareAndSwapInt64(&r.lastEndNs, last, t1) {
					break
				}
			}
		}
	}
}

// Warm up, measure, stop; progress on stderr once a second. Returns the
// measured window.
func (r *run) clock() float64 {
	cfg := r.cfg
	t0 := r.now()
	warmEnd := t0 + int64(cfg.warmup)
	nextReport := t0 + int64(time.Second)
	var lastDone uint64
	var end int64
	for {
		now := r.now()
		if atomic.LoadInt32(&r.measuring) == 0 && now >= warmEnd {
			r.startNs = now
			atomic.StoreInt64(&r.opsLeft, cfg.ops)
			atomic.StoreInt32(&r.measuring, 1)
			end = now + int64(cfg.duration)
		}
		if atomic.LoadInt32(&r.measuring) != 0 {
			if (cfg.ops > 0 && atomic.LoadInt64(&r.opsLeft) <= 0) || (cfg.ops == 0 && now >= end) {
				break
			}
		}
		if now >= nextReport {
			var done uint64
			for _, w := range r.workers {
				done += atomic.LoadUint64(&w.done)
			}
			phase := "warm-up  "
			if atomic.LoadInt32(&r.measuring) != 0 {
				phase = "measuring"
			}
			fmt.Fprintf(os.Stderr, "etcd-driver: %s %5.1f s %s %8d ops/s\n", cfg.workload,
				float64(now-t0)/1e9, phase, done-lastDone)
			lastDone = done
			nextReport += int64(time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopNs := r.now()
	atomic.StoreInt32(&r.stop, 1)
	return float64(stopNs-r.startNs) / 1e9
}

func (r *run) preload() error {
	cfg := r.cfg
	space, n := "k", cfg.keys
	switch cfg.workload {
	case "put", "watch":
		return nil
	case "cas":
		space = "cas"
		if cfg.hotKeys > 0 {
			n = cfg.hotKeys
		}
	}
	if cfg.preload == "never" {
		return nil
	}
	markerKey := cfg.ns + "/preloaded/" + space
	marker := fmt.Sprintf("keys=%d value=%d", n, cfg.valueSize)
	if cfg.preload == "auto" {
		ctx, cancel := r.ctx()
		resp, err := r.clients[0].Get(ctx, markerKey)
		cancel()
		if err == nil && len(resp.Kvs) == 1 && string(resp.Kvs[0].Value) == marker {
			fmt.Fprintf(os.Stderr, "etcd-driver: %s/ already holds %d keys of %d B (preload skipped)\n", space, n, cfg.valueSize)
			return nil
		}
	}
	fmt.Fprintf(os.Stderr, "etcd-driver: preloading %d keys %s/... of %d B\n", n, space, cfg.valueSize)
	t0 := time.Now()
	var next int64 = -1
	var firstErr atomic.Value
	var wg sync.WaitGroup
	value := strings.Repeat("p", cfg.valueSize)
	for t := 0; t < 64 && t < n; t++ {
		wg.Add(1)
		go func(cli *clientv3.Client) {
			defer wg.Done()
			for {
				i := atomic.AddInt64(&next, 1)
				if i >= int64(n) || firstErr.Load() != nil {
					return
				}
				ctx, cancel := r.ctx()
				_, err := cli.Put(ctx, key(cfg, space, int(i)), value)
				cancel()
				if err != nil {
					firstErr.Store(err)
					return
				}
			}
		}(r.clients[t%len(r.clients)])
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return fmt.Errorf("preload: %v", e)
	}
	ctx, cancel := r.ctx()
	defer cancel()
	if _, err := r.clients[0].Put(ctx, markerKey, marker); err != nil {
		return fmt.Errorf("preload marker: %v", err)
	}
	fmt.Fprintf(os.Stderr, "etcd-driver: preloaded %d keys in %.1f s\n", n, time.Since(t0).Seconds())
	return nil
}

// ---- watch ----

type watchReport struct {
	writes, delivered, missed, events uint64
	all, each                         []int64
	cnt                               counts
	window                            float64
}

const watchWritesMax = 1 << 21
const drainTime = 3 * time.Second

func (r *run) watchRun() (*watchReport, error) {
	cfg := r.cfg
	if cfg.valueSize < 16 {
		return nil, fmt.Errorf("watch needs --value-size >= 16")
	}
	prefix := fmt.Sprintf("%s/w%08x/", cfg.ns, rand.Uint32())
	startNs := make([]int64, watchWritesMax)
	lastNs := make([]int64, watchWritesMax)
	seen := make([]int32, watchWritesMax)
	measured := make([]int32, watchWritesMax)
	var nextWrite int64 = -1
	var watchersStop int32
	type watcher struct {
		lat []int64
		cnt counts
	}
	ws := make([]*watcher, cfg.watchers)
	var wwg sync.WaitGroup
	ready := make(chan struct{}, cfg.watchers)
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	for i := range ws {
		ws[i] = &watcher{}
		wt := ws[i]
		cli := r.clients[i%len(r.clients)]
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			ch := cli.Watch(clientv3.WithRequireLeader(wctx), prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
			first := true
			for resp := range ch {
				now := r.now()
				if first {
					first = false
					ready <- struct{}{}
				}
				if err := resp.Err(); err != nil {
					if atomic.LoadInt32(&watchersStop) == 0 {
						wt.cnt.err(err)
					}
					continue
				}
				for _, ev := range resp.Events {
					if ev.Type != clientv3.EventTypePut || len(ev.Kv.Value) < 16 {
						continue
					}
					g := int64(binary.LittleEndian.Uint64(ev.Kv.Value[8:16]))
					if g < 0 || g >= watchWritesMax {
						continue
					}
					wt.cnt.records++
					if atomic.LoadInt32(&measured[g]) != 0 {
						wt.lat = append(wt.lat, now-atomic.LoadInt64(&startNs[g]))
					}
					for {
						prev := atomic.LoadInt64(&lastNs[g])
						if prev >= now || atomic.CompareAndSwapInt64(&lastNs[g], prev, now) {
							break
						}
					}
					atomic.AddInt32(&seen[g], 1)
				}
			}
		}()
	}
	for i := 0; i < cfg.watchers; i++ {
		select {
		case <-ready:
		case <-time.After(cfg.timeout):
			return nil, fmt.Errorf("watchers not created within %v", cfg.timeout)
		}
	}
	fmt.Fprintf(os.Stderr, "etcd-driver: %d watchers on %s\n", cfg.watchers, prefix)
	var wg sync.WaitGroup
	for _, w := range r.workers {
		wg.Add(1)
		go func(w *worker) {
			defer wg.Done()
			for atomic.LoadInt32(&r.stop) == 0 {
				m := atomic.LoadInt32(&r.measuring) != 0
				if m && cfg.ops > 0 && atomic.AddInt64(&r.opsLeft, -1) < 0 {
					break
				}
				g := atomic.AddInt64(&nextWrite, 1)
				if g >= watchWritesMax {
					break
				}
				t0 := r.now()
				atomic.StoreInt64(&startNs[g], t0)
				if m {
					atomic.StoreInt32(&measured[g], 1)
				}
				binary.LittleEndian.PutUint64(w.value[0:8], uint64(t0))
				binary.LittleEndian.PutUint64(w.value[8:16], uint64(g))
				oc := counts{}
				err := r.put(w, fmt.Sprintf("%sk%d", prefix, g%int64(cfg.keys)), &oc)
				t1 := r.now()
				atomic.AddUint64(&w.done, 1)
				if !m || (cfg.ops == 0 && atomic.LoadInt32(&r.stop) != 0) {
					atomic.StoreInt32(&measured[g], 0)
					continue
				}
				oc.ops = 1
				if err != nil {
					atomic.StoreInt32(&measured[g], 0)
					oc.err(err)
				}
				w.cnt.add(&oc)
				for {
					last := atomic.LoadInt64(&r.lastEndNs)
					if last >= t1 || atomic.CompareAndSwapInt64(&r.lastEndNs, last, t1) {
						break
					}
				}
			}
		}(w)
	}
	window := r.clock()
	wg.Wait()
	if cfg.ops > 0 {
		window = float64(atomic.LoadInt64(&r.lastEndNs)-r.startNs) / 1e9
	}
	total := atomic.LoadInt64(&nextWrite) + 1
	if total > watchWritesMax {
		total = watchWritesMax
	}
	deadline := time.Now().Add(drainTime)
	for time.Now().Before(deadline) {
		pending := 0
		for g := int64(0); g < total; g++ {
			if atomic.LoadInt32(&measured[g]) != 0 && int(atomic.LoadInt32(&seen[g])) < cfg.watchers {
				pending++
			}
		}
		if pending == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	atomic.StoreInt32(&watchersStop, 1)
	wcancel()
	wwg.Wait()
	rep := &watchReport{window: window}
	for g := int64(0); g < total; g++ {
		if atomic.LoadInt32(&measured[g]) == 0 {
			continue
		}
		if int(atomic.LoadInt32(&seen[g])) >= cfg.watchers {
			rep.delivered++
			rep.all = append(rep.all, lastNs[g]-startNs[g])
		} else {
			rep.missed++
		}
	}
	for _, wt := range ws {
		rep.each = append(rep.each, wt.lat...)
		rep.events += wt.cnt.records
		wt.cnt.records = 0
		rep.cnt.add(&wt.cnt)
	}
	for _, w := range r.workers {
		rep.cnt.add(&w.cnt)
	}
	rep.writes = rep.cnt.writes
	sortI64(rep.all)
	sortI64(rep.each)
	return rep, nil
}

// ---- report ----

func sortI64(a []int64) { sort.Slice(a, func(i, j int) bool { return a[i] < a[j] }) }

// Nearest-rank percentile in ms, as memcoord-bench computes it.
func pct(sorted []int64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(p*float64(n) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return float64(sorted[rank-1]) / 1e6
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(s)
}

func parseArgs() (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("etcd-driver", flag.ContinueOnError)
	endpoints := fs.String("endpoints", "127.0.0.1:2379", "etcd client endpoints, comma-separated")
	fs.BoolVar(&cfg.json, "json", false, "the last line of stdout is one JSON object")
	fs.IntVar(&cfg.inflight, "inflight", 1, "requests in flight (goroutines, one call each)")
	workers := fs.Int("workers", 0, "the same as --inflight")
	fs.IntVar(&cfg.clients, "clients", 0, "clientv3 clients (one gRPC connection each); default one per 16 in flight")
	duration := fs.String("duration", "10s", "measured time")
	fs.Int64Var(&cfg.ops, "ops", 0, "measure N operations instead of a duration")
	warmup := fs.String("warmup", "", "unmeasured time first (1s; 0 with --ops)")
	fs.IntVar(&cfg.keys, "keys", 10000, "key space")
	fs.IntVar(&cfg.hotKeys, "hot-keys", 0, "cas: contended on K keys (0: uncontended)")
	fs.StringVar(&cfg.casRead, "cas-read", "linearizable", "linearizable, serializable or cached")
	fs.IntVar(&cfg.valueSize, "value-size", 256, "value bytes")
	fs.StringVar(&cfg.tier, "tier", "", "accepted and ignored: etcd has no tiers")
	fs.BoolVar(&cfg.serializable, "serializable", false, "serializable reads")
	fs.IntVar(&cfg.watchers, "watchers", 16, "watch: watchers")
	fs.IntVar(&cfg.listLimit, "list-limit", 100, "list: keys per page")
	fs.StringVar(&cfg.preload, "preload", "auto", "auto, always or never")
	timeout := fs.String("timeout", "5s", "per-call timeout")
	fs.StringVar(&cfg.ns, "ns", "bench", "key prefix")
	// Flags may follow the workload, as for memcoord-bench.
	var flags []string
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			if cfg.workload != "" {
				return nil, fmt.Errorf("one workload only, not also %q", a)
			}
			cfg.workload = a
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if f := fs.Lookup(name); f != nil && !strings.Contains(a, "=") {
			if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); !isBool && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		}
	}
	if err := fs.Parse(flags); err != nil {
		return nil, err
	}
	switch cfg.workload {
	case "put", "get", "cas", "mixed", "watch", "list":
	default:
		return nil, fmt.Errorf("workload: put, get, cas, mixed, watch or list, not %q", cfg.workload)
	}
	cfg.endpoints = strings.Split(*endpoints, ",")
	if *workers > 0 {
		cfg.inflight = *workers
	}
	var err error
	if cfg.duration, err = parseDuration(*duration); err != nil {
		return nil, fmt.Errorf("--duration: %v", err)
	}
	if cfg.timeout, err = parseDuration(*timeout); err != nil {
		return nil, fmt.Errorf("--timeout: %v", err)
	}
	switch {
	case *warmup != "":
		if cfg.warmup, err = parseDuration(*warmup); err != nil {
			return nil, fmt.Errorf("--warmup: %v", err)
		}
	case cfg.ops > 0:
		cfg.warmup = 0
	default:
		cfg.warmup = time.Second
	}
	if cfg.inflight < 1 || cfg.keys < 1 || cfg.valueSize < 0 || cfg.watchers < 1 || cfg.listLimit < 1 {
		return nil, fmt.Errorf("--inflight, --keys, --watchers and --list-limit must be positive")
	}
	if cfg.casRead != "linearizable" && cfg.casRead != "serializable" && cfg.casRead != "cached" {
		return nil, fmt.Errorf("--cas-read: linearizable, serializable or cached")
	}
	if cfg.workload == "cas" && cfg.hotKeys == 0 && cfg.keys < cfg.inflight {
		cfg.keys = cfg.inflight
	}
	if cfg.clients == 0 {
		load := cfg.inflight
		if cfg.workload == "watch" {
			load += cfg.watchers
		}
		cfg.clients = (load + threadsPerClient - 1) / threadsPerClient
	}
	if cfg.clients > cfg.inflight && cfg.workload != "watch" {
		cfg.clients = cfg.inflight
	}
	return cfg, nil
}

func main() {
	cfg, err := parseArgs()
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcd-driver: %v\n", err)
		os.Exit(2)
	}
	r := &run{cfg: cfg, monoOrigin: time.Now()}
	logCfg := zap.NewProductionConfig()
	logCfg.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	for i := 0; i < cfg.clients; i++ {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   cfg.endpoints,
			DialTimeout: cfg.timeout,
			LogConfig:   &logCfg,
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "etcd-driver: %v\n", err)
			os.Exit(3)
		}
		defer cli.Close()
		r.clients = append(r.clients, cli)
	}
	seed := time.Now().UnixNano()
	for i := 0; i < cfg.inflight; i++ {
		w := &worker{id: i, cli: r.clients[i%len(r.clients)], rng: rand.New(rand.NewSource(seed + int64(i)))}
		w.value = make([]byte, cfg.valueSize)
		for j := range w.value {
			w.value[j] = byte('a' + (i+j)%26)
		}
		if cfg.workload == "cas" && cfg.hotKeys == 0 {
			w.versions = make([]int64, cfg.keys/cfg.inflight+1)
		}
		r.workers = append(r.workers, w)
	}
	if err := r.preload(); err != nil {
		fmt.Fprintf(os.Stderr, "etcd-driver: %v\n", err)
		os.Exit(3)
	}
	fmt.Fprintf(os.Stderr, "etcd-driver: %s, %d in flight, %d clients\n", cfg.workload, cfg.inflight, cfg.clients)
	var total counts
	var lat []int64
	var window float64
	var wr *watchReport
	if cfg.workload == "watch" {
		if wr, err = r.watchRun(); err != nil {
			fmt.Fprintf(os.Stderr, "etcd-driver: %v\n", err)
			os.Exit(3)
		}
		total = wr.cnt
		total.ops = wr.delivered
		lat = wr.all
		window = wr.window
	} else {
		var wg sync.WaitGroup
		for _, w := range r.workers {
			wg.Add(1)
			go r.workerMain(w, &wg)
		}
		window = r.clock()
		wg.Wait()
		if cfg.ops > 0 {
			window = float64(atomic.LoadInt64(&r.lastEndNs)-r.startNs) / 1e9
		}
		for _, w := range r.workers {
			total.add(&w.cnt)
			lat = append(lat, w.lat...)
		}
		sortI64(lat)
	}
	opsPerSec := 0.0
	if window > 0 {
		opsPerSec = float64(total.ops) / window
	}
	if total.errors == nil {
		total.errors = map[string]uint64{}
	}
	if cfg.json {
		out := map[string]interface{}{
			"tool": "etcd-driver", "workload": cfg.workload, "inflight": cfg.inflight,
			"clients": cfg.clients, "keys": cfg.keys, "hot_keys": cfg.hotKeys,
			"value_size": cfg.valueSize, "serializable": cfg.serializable, "cas_read": cfg.casRead,
			"warmup_s": cfg.warmup.Seconds(), "duration_s": round3(window), "ops": total.ops,
			"ops_per_sec": float64(int64(opsPerSec*10)) / 10,
			"p50_ms":      round3(pct(lat, 0.50)), "p90_ms": round3(pct(lat, 0.90)),
			"p99_ms": round3(pct(lat, 0.99)), "p999_ms": round3(pct(lat, 0.999)),
			"max_ms": round3(pct(lat, 1.0)), "errors": total.nErrors(), "errors_by_code": total.errors,
			"conflicts": total.conflicts, "cas_ok": total.casOK, "reads": total.reads,
			"writes": total.writes, "records": total.records,
		}
		if wr != nil {
			out["watchers"] = cfg.watchers
			out["writes_acked"] = wr.writes
			out["delivered"] = wr.delivered
			out["missed"] = wr.missed
			out["events"] = wr.events
			out["event_p50_ms"] = round3(pct(wr.each, 0.50))
			out["event_p99_ms"] = round3(pct(wr.each, 0.99))
		}
		b, _ := json.Marshal(out)
		fmt.Println(string(b))
	} else {
		ser := ""
		if cfg.serializable {
			ser = " --serializable"
		}
		fmt.Printf("etcd-driver %s%s: %d in flight over %d clients, %d B values, keys %d\n",
			cfg.workload, ser, cfg.inflight, cfg.clients, cfg.valueSize, cfg.keys)
		if cfg.workload == "cas" {
			fmt.Printf("  cas:       %d hot keys, read %s; %d CAS ok, %d conflicts retried\n",
				cfg.hotKeys, cfg.casRead, total.casOK, total.conflicts)
		}
		if wr != nil {
			fmt.Printf("  watch:     %d watchers; %d writes acknowledged, %d reached every watcher, %d missed, %d events\n",
				cfg.watchers, wr.writes, wr.delivered, wr.missed, wr.events)
		}
		fmt.Printf("  measured:  %.2f s after %.1f s warm-up: %d ops, %.0f ops/s\n",
			window, cfg.warmup.Seconds(), total.ops, opsPerSec)
		fmt.Printf("  latency:   p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms\n",
			pct(lat, 0.5), pct(lat, 0.9), pct(lat, 0.99), pct(lat, 0.999), pct(lat, 1))
		fmt.Printf("  errors:    %d", total.nErrors())
		for k, v := range total.errors {
			if v > 0 {
				fmt.Printf("  %s %d", k, v)
			}
		}
		fmt.Println()
	}
	if total.nErrors() > 0 || (wr != nil && wr.missed > 0) {
		os.Exit(1)
	}
}
