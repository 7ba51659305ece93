package main

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// results is everything one run measured.
type results struct {
	Started      time.Time        `json:"started"`
	Finished     time.Time        `json:"finished"`
	Machine      machine          `json:"machine"`
	ReceiverCPUs string           `json:"receiver_cpus"`
	Step         time.Duration    `json:"step_ns"`
	Ingest       *ingestResults   `json:"ingest,omitempty"`
	Statsd       *statsdResults   `json:"statsd,omitempty"`
	Memory       []memPoint       `json:"memory,omitempty"`
	Accuracy     *accuracyResults `json:"accuracy,omitempty"`
	Soak         *soakResults     `json:"soak,omitempty"`
}

// machine describes where the figures were taken.
type machine struct {
	CPU     string `json:"cpu"`
	CPUs    int    `json:"cpus"`
	Mem     string `json:"mem_total"`
	Kernel  string `json:"kernel"`
	OS      string `json:"os"`
	Go      string `json:"go"`
	Libzmq  string `json:"libzmq"`
	Virtual string `json:"virtualization"`
}

func describeMachine(ctx context.Context) machine {
	// runtime.NumCPU would count only the CPUs the harness is pinned to.
	m := machine{Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(l, ":")
			switch k = strings.TrimSpace(k); {
			case !ok:
			case k == "processor":
				m.CPUs++
			case k == "model name" && m.CPU == "":
				m.CPU = strings.TrimSpace(v)
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 2 {
			if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
				m.Mem = strconv.FormatFloat(kb/(1<<20), 'f', 1, 64) + " GiB"
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "systemd-detect-virt").Output(); err == nil {
		m.Virtual = strings.TrimSpace(string(out))
	}
	major, minor, patch := zmq.Version()
	m.Libzmq = strings.Join([]string{itoa(major), itoa(minor), itoa(patch)}, ".")
	return m
}

func itoa(i int) string { return strconv.Itoa(i) }
