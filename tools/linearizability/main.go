// Command linearizability checks a history of ZooKeeper operations recorded by
// zkop's fault suite for linearizability with Porcupine (the checker etcd's
// robustness tests use), one register per znode: plain writes (setData with
// version -1) and compare-and-set (setData with an expected version) must be
// linearizable; reads may lag, never run ahead (see step).
//
//	linearizability -history H.jsonl [-slice S.jsonl -html S.html] [-timeout 5m]
//
// It prints one JSON object: operations checked, the result (Ok, Illegal or
// Unknown when the search timed out) and, for an illegal history, the failing
// znode and the shortest failing prefix of its operations, written to -slice
// (the same line format as the history) and drawn by Porcupine in -html.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// record is one line of the history, as zkop's test harness writes it.
type record struct {
	Session  int64  `json:"session"`
	Key      string `json:"key"`
	Op       string `json:"op"` // read, write or cas
	Value    string `json:"value,omitempty"`
	Expected int64  `json:"expected,omitempty"`
	Call     int64  `json:"call"`
	Return   int64  `json:"return"`
	// ok, bad-version, no-node, or unknown (the request may or may not have
	// taken effect: a connection lost after it was sent).
	Outcome string `json:"outcome"`
	// For ok: the value read, and the znode's version after the operation.
	Read    string `json:"read,omitempty"`
	Version int64  `json:"version"`
	Mzxid   int64  `json:"mzxid,omitempty"`
}

type state struct {
	value   string
	version int64
}

type input struct {
	op       string
	value    string
	expected int64
}

type output struct {
	outcome string
	read    string
	version int64
}

// step is the sequential specification of one znode's data and version; it
// returns every state the operation may leave (none: it cannot happen here).
// An update of unknown outcome either took effect or did not: both states
// go on until a later answer rules one out.
//
// Writes (setData, plain or with an expected version) are linearizable in
// ZooKeeper; reads are not: a follower answers from what it has applied,
// which may lag. A read is checked for what ZooKeeper does promise to any
// reader: it shows no write that was not yet committed when it answered
// (its version is at most the znode's version at some point before its
// return), and the current value when it shows the current version. What a
// session may see is checked beside this (tests/common/history/sessions.rs).
func step(st, in, out interface{}) []interface{} {
	s, i, o := st.(state), in.(input), out.(output)
	next := state{i.value, s.version + 1}
	switch {
	case i.op == "read":
		if o.outcome == "ok" && (o.version < s.version || (o.version == s.version && o.read == s.value)) {
			return []interface{}{s}
		}
	case i.op == "cas" && s.version != i.expected:
		if o.outcome == "unknown" || o.outcome == "bad-version" {
			return []interface{}{s}
		}
	case i.op != "write" && i.op != "cas":
	case o.outcome == "unknown":
		return []interface{}{s, next}
	case o.outcome == "ok" && o.version == next.version:
		return []interface{}{next}
	}
	return nil
}

var model = (&porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		return byKey(h)
	},
	Init: func() []interface{} { return []interface{}{state{"", 0}} },
	Step: step,
	Hash: func(st interface{}) uint64 {
		s := st.(state)
		h := uint64(s.version) * 0x9e3779b97f4a7c15
		for _, c := range []byte(s.value) {
			h = (h ^ uint64(c)) * 0x100000001b3
		}
		return h
	},
	DescribeOperation: func(in, out interface{}) string {
		i, o := in.(input), out.(output)
		var res string
		switch o.outcome {
		case "ok":
			res = fmt.Sprintf("v%d", o.version)
			if i.op == "read" {
				res = fmt.Sprintf("%q v%d", o.read, o.version)
			}
		default:
			res = o.outcome
		}
		switch i.op {
		case "write":
			return fmt.Sprintf("set(%q) -> %s", i.value, res)
		case "cas":
			return fmt.Sprintf("cas(v%d, %q) -> %s", i.expected, i.value, res)
		}
		return "get() -> " + res
	},
	DescribeState: func(st interface{}) string {
		s := st.(state)
		return fmt.Sprintf("%q v%d", s.value, s.version)
	},
}).ToModel()

func byKey(h []porcupine.Operation) [][]porcupine.Operation {
	keys := map[string][]porcupine.Operation{}
	var order []string
	for _, op := range h {
		k := op.Metadata.(string)
		if _, seen := keys[k]; !seen {
			order = append(order, k)
		}
		keys[k] = append(keys[k], op)
	}
	sort.Strings(order)
	out := make([][]porcupine.Operation, 0, len(order))
	for _, k := range order {
		out = append(out, keys[k])
	}
	return out
}

// verdict is what the command prints.
type verdict struct {
	Operations int    `json:"operations"`
	Keys       int    `json:"keys"`
	Result     string `json:"result"`
	FailingKey string `json:"failingKey,omitempty"`
	Slice      int    `json:"sliceOperations,omitempty"`
	Millis     int64  `json:"millis"`
}

func main() {
	historyPath := flag.String("history", "", "the history (JSON lines)")
	slicePath := flag.String("slice", "", "where to write the shortest failing slice")
	htmlPath := flag.String("html", "", "where to write Porcupine's drawing of that slice")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up on one znode's history after this long")
	flag.Parse()
	if err := run(*historyPath, *slicePath, *htmlPath, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "linearizability:", err)
		os.Exit(2)
	}
}

func run(historyPath, slicePath, htmlPath string, timeout time.Duration) error {
	records, err := load(historyPath)
	if err != nil {
		return err
	}
	started := time.Now()
	ops, end := operations(records)
	v := verdict{Operations: len(ops), Keys: len(byKey(ops)), Result: string(porcupine.Ok)}
	for _, keyOps := range byKey(ops) {
		res := porcupine.CheckOperationsTimeout(model, keyOps, timeout)
		if res == porcupine.Ok {
			continue
		}
		v.Result = string(res)
		v.FailingKey = keyOps[0].Metadata.(string)
		if res == porcupine.Illegal {
			slice := shortestFailingPrefix(keyOps, end, timeout)
			v.Slice = len(slice)
			if err := writeSlice(slice, records, slicePath, htmlPath, timeout); err != nil {
				return err
			}
		}
		break
	}
	v.Millis = time.Since(started).Milliseconds()
	return json.NewEncoder(os.Stdout).Encode(v)
}

func load(path string) ([]record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var records []record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		records = append(records, r)
	}
	return records, sc.Err()
}

// operations turns records into Porcupine's operations, each carrying its
// znode in Metadata (the partition). Reads without an answer constrain
// nothing and are left out; an update of unknown outcome returns when its
// session's next answered update did (see settledBy), or after everything
// else. Sessions become dense client ids, as the drawing needs.
func operations(records []record) ([]porcupine.Operation, int64) {
	var end int64
	for _, r := range records {
		if r.Return > end {
			end = r.Return
		}
	}
	end++
	settled := settledBy(records, end)
	clients := map[int64]int{}
	var ops []porcupine.Operation
	for n, r := range records {
		if r.Op == "read" && r.Outcome != "ok" {
			continue
		}
		id, ok := clients[r.Session]
		if !ok {
			id = len(clients)
			clients[r.Session] = id
		}
		ret := r.Return
		if r.Outcome == "unknown" {
			ret = settled[n]
		}
		ops = append(ops, porcupine.Operation{
			ClientId: id,
			Input:    input{r.Op, r.Value, r.Expected},
			Call:     r.Call,
			Output:   output{r.Outcome, r.Read, r.Version},
			Return:   ret,
			Metadata: r.Key,
		})
	}
	return ops, end
}

// settledBy says, for each update of unknown outcome, by when it took effect
// if it ever did: ZooKeeper applies "updates from a client in the order that
// they were sent" (its programmer's guide), so an update lost with its
// connection is applied, if at all, before the next update the same session
// sent and got an answer to (ok, or a refused compare-and-set, which the
// leader orders like any other update). Without this bound every lost update
// stays open to the end of the history and Porcupine's search grows with
// 2^(open updates): a 20-minute run has hundreds.
func settledBy(records []record, end int64) map[int]int64 {
	bySession := map[int64][]int{}
	for n, r := range records {
		if r.Op != "read" {
			bySession[r.Session] = append(bySession[r.Session], n)
		}
	}
	settled := map[int]int64{}
	for _, updates := range bySession {
		sort.Slice(updates, func(a, b int) bool { return records[updates[a]].Call < records[updates[b]].Call })
		next := end
		for i := len(updates) - 1; i >= 0; i-- {
			r := records[updates[i]]
			switch r.Outcome {
			case "unknown":
				settled[updates[i]] = next
			case "ok", "bad-version":
				next = r.Return
			}
		}
	}
	return settled
}

// relaxed is the part of one znode's history called before `cut`: an
// operation still running at the cut is a read left out or a write of
// unknown outcome. If the whole history is linearizable, so is this.
func relaxed(ops []porcupine.Operation, cut, end int64) []porcupine.Operation {
	var out []porcupine.Operation
	for _, op := range ops {
		if op.Call >= cut {
			continue
		}
		if op.Return > cut {
			i := op.Input.(input)
			if i.op == "read" {
				continue
			}
			op.Output = output{outcome: "unknown"}
			op.Return = end
		}
		out = append(out, op)
	}
	return out
}

// shortestFailingPrefix bisects over the operations' return times for the
// earliest cut whose relaxed prefix is already illegal.
func shortestFailingPrefix(ops []porcupine.Operation, end int64, timeout time.Duration) []porcupine.Operation {
	var cuts []int64
	for _, op := range ops {
		if op.Return < end {
			cuts = append(cuts, op.Return+1)
		}
	}
	sort.Slice(cuts, func(a, b int) bool { return cuts[a] < cuts[b] })
	illegal := func(i int) bool {
		return porcupine.CheckOperationsTimeout(model, relaxed(ops, cuts[i], end), timeout) == porcupine.Illegal
	}
	i := sort.Search(len(cuts), illegal)
	if i < len(cuts) && illegal(i) {
		return relaxed(ops, cuts[i], end)
	}
	return ops
}

func writeSlice(slice []porcupine.Operation, records []record, slicePath, htmlPath string, timeout time.Duration) error {
	if slicePath != "" {
		f, err := os.Create(slicePath)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(f)
		for _, op := range slice {
			i, o := op.Input.(input), op.Output.(output)
			r := record{Session: int64(op.ClientId), Key: op.Metadata.(string), Op: i.op, Value: i.value,
				Expected: i.expected, Call: op.Call, Return: op.Return, Outcome: o.outcome, Read: o.read, Version: o.version}
			if err := enc.Encode(r); err != nil {
				f.Close()
				return err
			}
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if htmlPath != "" {
		_, info := porcupine.CheckOperationsVerbose(model, slice, timeout)
		return porcupine.VisualizePath(model, info, htmlPath)
	}
	return nil
}
