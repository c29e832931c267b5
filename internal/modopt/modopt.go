// Package modopt types and checks module option values: the monitor checks
// a value an operator sets against the option a module declares, and the
// manager checks the declarations and reads the values with the same rules.
//
// Values travel as text. Each type has one canonical text form, which is
// what the map stores: an int in decimal, a float as strconv.FormatFloat
// 'g', a bool as true or false, a duration as time.Duration.String.
package modopt

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// MaxValueLen bounds a value (and a default, a bound, an allowed value).
const MaxValueLen = 1024

// MaxAllowedValues bounds an option's allowed values.
const MaxAllowedValues = 64

// TypeName names an option type in messages: string, int, float, bool,
// duration.
func TypeName(t mgrv1.OptionType) string {
	switch t {
	case mgrv1.OptionType_OPTION_TYPE_STRING:
		return "string"
	case mgrv1.OptionType_OPTION_TYPE_INT:
		return "int"
	case mgrv1.OptionType_OPTION_TYPE_FLOAT:
		return "float"
	case mgrv1.OptionType_OPTION_TYPE_BOOL:
		return "bool"
	case mgrv1.OptionType_OPTION_TYPE_DURATION:
		return "duration"
	}
	return t.String()
}

// Canonical parses v as a value of type t and returns its canonical form.
func Canonical(t mgrv1.OptionType, v string) (string, error) {
	if len(v) > MaxValueLen {
		return "", fmt.Errorf("%d bytes, at most %d allowed", len(v), MaxValueLen)
	}
	if !utf8.ValidString(v) {
		return "", fmt.Errorf("not valid UTF-8")
	}
	switch t {
	case mgrv1.OptionType_OPTION_TYPE_STRING:
		return v, nil
	case mgrv1.OptionType_OPTION_TYPE_INT:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return "", fmt.Errorf("%q is not an int (a decimal integer of 64 bits)", v)
		}
		return strconv.FormatInt(n, 10), nil
	case mgrv1.OptionType_OPTION_TYPE_FLOAT:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return "", fmt.Errorf("%q is not a float (a finite decimal number)", v)
		}
		return strconv.FormatFloat(f, 'g', -1, 64), nil
	case mgrv1.OptionType_OPTION_TYPE_BOOL:
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return "", fmt.Errorf("%q is not a bool (true or false)", v)
		}
		return strconv.FormatBool(b), nil
	case mgrv1.OptionType_OPTION_TYPE_DURATION:
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return "", fmt.Errorf("%q is not a duration (like 1.5s or 2m)", v)
		}
		return d.String(), nil
	}
	return "", fmt.Errorf("option type %s is not one of string, int, float, bool, duration", t)
}

// compare orders two canonical values of type t (int, float or duration).
func compare(t mgrv1.OptionType, a, b string) int {
	switch t {
	case mgrv1.OptionType_OPTION_TYPE_INT:
		x, _ := strconv.ParseInt(a, 10, 64)
		y, _ := strconv.ParseInt(b, 10, 64)
		return cmpOrdered(x, y)
	case mgrv1.OptionType_OPTION_TYPE_FLOAT:
		x, _ := strconv.ParseFloat(a, 64)
		y, _ := strconv.ParseFloat(b, 64)
		return cmpOrdered(x, y)
	case mgrv1.OptionType_OPTION_TYPE_DURATION:
		x, _ := time.ParseDuration(a)
		y, _ := time.ParseDuration(b)
		return cmpOrdered(x, y)
	}
	return strings.Compare(a, b)
}

func cmpOrdered[T int64 | float64 | time.Duration](x, y T) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func ordered(t mgrv1.OptionType) bool {
	return t == mgrv1.OptionType_OPTION_TYPE_INT || t == mgrv1.OptionType_OPTION_TYPE_FLOAT ||
		t == mgrv1.OptionType_OPTION_TYPE_DURATION
}

// Check parses v as a value of option o: of its type, within min and max,
// one of its allowed values. It returns the canonical form, or an error
// naming the type, the bound or the allowed values.
func Check(o *mgrv1.ModuleOption, v string) (string, error) {
	t := o.GetType()
	c, err := Canonical(t, v)
	if err != nil {
		return "", fmt.Errorf("value %s", err)
	}
	if ordered(t) {
		if lo := o.GetMin(); lo != "" {
			if l, err := Canonical(t, lo); err == nil && compare(t, c, l) < 0 {
				return "", fmt.Errorf("value %s is below the minimum %s", c, l)
			}
		}
		if hi := o.GetMax(); hi != "" {
			if h, err := Canonical(t, hi); err == nil && compare(t, c, h) > 0 {
				return "", fmt.Errorf("value %s is above the maximum %s", c, h)
			}
		}
	}
	if allowed := o.GetAllowedValues(); len(allowed) > 0 {
		ok := slices.ContainsFunc(allowed, func(a string) bool {
			ca, err := Canonical(t, a)
			return err == nil && ca == c
		})
		if !ok {
			return "", fmt.Errorf("value %q is not one of the allowed values %s", c, strings.Join(allowed, ", "))
		}
	}
	return c, nil
}

// Validate checks a declaration: a known type; min, max and the allowed
// values of that type (min and max only for int, float, duration; min not
// above max); the default a valid value.
func Validate(o *mgrv1.ModuleOption) error {
	t := o.GetType()
	if _, ok := mgrv1.OptionType_name[int32(t)]; !ok || t == mgrv1.OptionType_OPTION_TYPE_UNSPECIFIED {
		return fmt.Errorf("type %s: must be one of string, int, float, bool, duration", t)
	}
	if !ordered(t) && (o.GetMin() != "" || o.GetMax() != "") {
		return fmt.Errorf("min and max: only int, float and duration options have bounds, not %s", TypeName(t))
	}
	var lo, hi string
	var err error
	if o.GetMin() != "" {
		if lo, err = Canonical(t, o.GetMin()); err != nil {
			return fmt.Errorf("min: %v", err)
		}
	}
	if o.GetMax() != "" {
		if hi, err = Canonical(t, o.GetMax()); err != nil {
			return fmt.Errorf("max: %v", err)
		}
	}
	if lo != "" && hi != "" && compare(t, lo, hi) > 0 {
		return fmt.Errorf("min %s is above max %s", lo, hi)
	}
	if n := len(o.GetAllowedValues()); n > MaxAllowedValues {
		return fmt.Errorf("allowed_values: %d entries, at most %d allowed", n, MaxAllowedValues)
	}
	for i, a := range o.GetAllowedValues() {
		if _, err := Canonical(t, a); err != nil {
			return fmt.Errorf("allowed_values[%d]: %v", i, err)
		}
	}
	if _, err := Check(o, o.GetDefaultValue()); err != nil {
		return fmt.Errorf("default %q: %v", o.GetDefaultValue(), err)
	}
	return nil
}
