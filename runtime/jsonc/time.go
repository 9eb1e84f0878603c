package jsonc

import "time"

// parseUTC parses the common form "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (with its quotes) exactly
// as time.Time.UnmarshalJSON does; ok is false for any other input, which the caller then
// gives to UnmarshalJSON.
func parseUTC(b []byte) (t time.Time, ok bool) {
	if len(b) < len(`"2006-01-02T15:04:05Z"`) || b[0] != '"' || b[len(b)-2] != 'Z' || b[len(b)-1] != '"' {
		return time.Time{}, false
	}
	s := b[1 : len(b)-2]
	if s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(s[0:4], 0, 9999)
	month, ok2 := digits(s[5:7], 1, 12)
	hour, ok3 := digits(s[11:13], 0, 23)
	minute, ok4 := digits(s[14:16], 0, 59)
	sec, ok5 := digits(s[17:19], 0, 59)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return time.Time{}, false
	}
	day, ok := digits(s[8:10], 1, daysIn(month, year))
	if !ok {
		return time.Time{}, false
	}
	nsec := 0
	if frac := s[19:]; len(frac) > 0 {
		if len(frac) < 2 || len(frac) > 10 || frac[0] != '.' {
			return time.Time{}, false
		}
		n, ok := digits(frac[1:], 0, 999999999)
		if !ok {
			return time.Time{}, false
		}
		for range 10 - len(frac) {
			n *= 10
		}
		nsec = n
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

// digits parses the decimal digits of s as a number in [lo,hi].
func digits(s []byte, lo, hi int) (int, bool) {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, lo <= n && n <= hi
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
